<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\BucketClient;
use TrioS3Rpc\Client;
use TrioS3Rpc\ClientInterface;

/**
 * What PHPStan at its highest level would hold, as far as a test can without it (PHPStan is
 * not packaged by Debian): every public method of the client types says what it throws,
 * every array parameter and result says what it holds, and ClientInterface has every
 * method of Client that callers use.
 */
final class LibraryShapeTest extends TestCase
{
    /** @return array<string, array{class-string}> */
    public static function types(): array
    {
        return ['Client' => [Client::class], 'ClientInterface' => [ClientInterface::class], 'BucketClient' => [BucketClient::class]];
    }

    /**
     * @dataProvider types
     * @param class-string $type
     */
    public function testEveryCallingMethodDocumentsItsExceptionsAndArrays(string $type): void
    {
        $local = ['transport', 'options', 'bucket', 'client', 'withControl', 'pauseBeforeResume'];
        foreach ((new \ReflectionClass($type))->getMethods(\ReflectionMethod::IS_PUBLIC) as $method) {
            if ($method->isConstructor() || $method->isStatic() || \in_array($method->getName(), $local, true)) {
                continue;
            }
            $doc = (string) $method->getDocComment();
            self::assertStringContainsString('@throws', $doc, "$type::{$method->getName()} has no @throws");
            foreach ($method->getParameters() as $parameter) {
                if ((string) $parameter->getType() === 'array') {
                    self::assertMatchesRegularExpression(
                        '~@param\s+(array|list)<[^>]+>\s+\$' . $parameter->getName() . '\b~',
                        $doc,
                        "$type::{$method->getName()} does not say what \${$parameter->getName()} holds",
                    );
                }
            }
        }
    }

    public function testTheInterfaceHasEveryMethodOfTheClientThatCallsTheServer(): void
    {
        $local = ['transport', 'options', 'pauseBeforeResume'];
        $client = \array_map(static fn (\ReflectionMethod $m): string => $m->getName(), (new \ReflectionClass(Client::class))->getMethods(\ReflectionMethod::IS_PUBLIC));
        $interface = \array_map(static fn (\ReflectionMethod $m): string => $m->getName(), (new \ReflectionClass(ClientInterface::class))->getMethods());
        $missing = \array_diff($client, $interface, $local, ['__construct', 'connect']);
        self::assertSame([], \array_values($missing));
    }

    public function testEverySourceFileParses(): void
    {
        $files = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator(__DIR__ . '/../../src'));
        $count = 0;
        foreach ($files as $file) {
            if ($file->getExtension() === 'php') {
                \exec(\escapeshellarg(\PHP_BINARY) . ' -l ' . \escapeshellarg($file->getPathname()) . ' 2>&1', $output, $status);
                self::assertSame(0, $status, \implode("\n", $output));
                $count++;
            }
        }
        self::assertGreaterThan(40, $count);
    }
}
