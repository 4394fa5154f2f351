<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Client;
use TrioS3Rpc\ClientOptions;
use TrioS3Rpc\Exception\InvalidArgument;

/** writeStream of a PSR-7 StreamInterface (psr/http-message from Debian), offline. */
final class Psr7Test extends TestCase
{
    public function testAPsr7StreamIsUploadedInChunksAsItIs(): void
    {
        if (!\interface_exists(\Psr\Http\Message\StreamInterface::class)) {
            self::fail('psr/http-message is absent: run .ci/install-php');
        }
        $bytes = \random_bytes(25);
        $fake = (new FakeTransport())
            ->answer('s3.UploadStart', ['upload_id' => 'u1'])
            ->answer('s3.UploadChunk', ['size' => 10], ['size' => 20], ['size' => 25])
            ->answer('s3.UploadFinish', ['success' => true, 'pathname' => 'a.bin', 'size' => 25, 'last_modified' => 1]);
        $source = new Psr7StringStream($bytes, 7);
        $written = (new Client($fake, new ClientOptions(chunkSize: 10)))->writeStream('b', 'a.bin', $source);
        self::assertSame(25, $written->size);
        $chunks = \array_values(\array_filter($fake->calls, static fn (array $c): bool => $c[0] === 's3.UploadChunk'));
        self::assertSame($bytes, \implode('', \array_map(static fn (array $c): string => $c[1]['content'], $chunks)));
        self::assertSame([0, 10, 20], \array_map(static fn (array $c): int => $c[1]['offset'], $chunks));
        self::assertGreaterThan(1, $source->reads);
    }

    public function testSomethingElseIsRefusedByTheClient(): void
    {
        $this->expectException(InvalidArgument::class);
        $this->expectExceptionMessage('PSR-7');
        (new Client(new FakeTransport()))->writeStream('b', 'a.bin', 'not a stream');
    }
}
