<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Frameworks;

use Illuminate\Config\Repository;
use Illuminate\Container\Container;
use Illuminate\Filesystem\FilesystemManager;
use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Tests\LiveServer;

/**
 * The Laravel recipe of php/README.md, run as written, with Laravel's own FilesystemManager
 * and FilesystemAdapter (Laravel 10.48 from Debian trixie's source package), against the
 * live server. Storage::extend is FilesystemManager::extend behind the facade; the test
 * calls it on the manager, there being no booted Laravel application here.
 */
final class LaravelRecipeTest extends TestCase
{
    private static function disk(string $bucket): \Illuminate\Filesystem\FilesystemAdapter
    {
        if (!class_exists(FilesystemManager::class)) {
            self::fail("Laravel's source is absent: run .ci/install-php");
        }
        $app = new Container();
        $app->instance('config', new Repository(['filesystems' => ['disks' => ['uploads' => [
            'driver' => 'trio-s3rpc',
            'rpc' => LiveServer::env('TRIO_S3RPC_TCP'),
            'bucket' => $bucket,
            'root' => 'laravel-' . bin2hex(random_bytes(4)),
            'throw' => true,
        ]]]]));
        $manager = new FilesystemManager($app);
        $code = RecipeBlock::after('laravel-recipe');
        // The block as written (eval'd code may have its own `use` lines), the facade call
        // aimed at this manager.
        $code = preg_replace('~^use Illuminate\\\\Support\\\\Facades\\\\Storage;$~m', '', $code, 1, $count);
        self::assertSame(1, $count);
        $code = str_replace('Storage::extend(', '$manager->extend(', $code);
        eval($code);
        return $manager->disk('uploads');
    }

    public function testPutGetUrlTemporaryUrlAndTemporaryUploadUrl(): void
    {
        $disk = self::disk('moto');
        self::assertTrue($disk->put('avatars/1.txt', 'hello', 'public'));
        self::assertSame('hello', $disk->get('avatars/1.txt'));
        self::assertSame('public', $disk->getVisibility('avatars/1.txt'));

        $url = $disk->url('avatars/1.txt');
        self::assertStringContainsString('/avatars/1.txt', $url);
        self::assertSame('hello', file_get_contents($url));

        self::assertTrue($disk->providesTemporaryUrls());
        $temporary = $disk->temporaryUrl('avatars/1.txt', new \DateTimeImmutable('+5 minutes'), [
            'ResponseContentDisposition' => 'attachment; filename="hello.txt"',
        ]);
        self::assertStringContainsString('X-Amz-Signature=', $temporary);
        self::assertSame('hello', file_get_contents($temporary));
        self::assertContains('Content-Disposition: attachment; filename="hello.txt"', $http_response_header);

        $upload = $disk->temporaryUploadUrl('avatars/2.png', new \DateTimeImmutable('+5 minutes'), ['ContentType' => 'image/png']);
        self::assertSame('image/png', $upload['headers']['Content-Type']);
        $lines = array_map(static fn ($n, $v) => "$n: $v", array_keys($upload['headers']), $upload['headers']);
        $put = stream_context_create(['http' => ['method' => 'PUT', 'header' => $lines, 'content' => 'png!']]);
        self::assertNotFalse(file_get_contents($upload['url'], false, $put));
        self::assertSame('png!', $disk->get('avatars/2.png'));
        self::assertSame('image/png', $disk->mimeType('avatars/2.png'));

        $disk->deleteDirectory('avatars');
        self::assertFalse($disk->exists('avatars/1.txt'));
    }

    public function testWritesAndReadsStreamsThroughTheDisk(): void
    {
        $disk = self::disk('sw');
        $source = fopen('php://temp', 'w+b');
        fwrite($source, str_repeat('x', 5 << 20));
        rewind($source);
        self::assertTrue($disk->writeStream('big.bin', $source));
        self::assertSame(5 << 20, $disk->size('big.bin'));
        $read = $disk->readStream('big.bin');
        self::assertSame(hash('sha256', str_repeat('x', 5 << 20)), hash('sha256', stream_get_contents($read)));
        self::assertSame(['big.bin'], $disk->files());
        $disk->delete('big.bin');
    }
}
