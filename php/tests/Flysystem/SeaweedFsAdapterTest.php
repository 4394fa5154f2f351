<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Flysystem;

use League\Flysystem\AdapterTestUtilities\FilesystemAdapterTestCase;
use League\Flysystem\Config;
use League\Flysystem\FilesystemAdapter;
use League\Flysystem\UnableToSetVisibility;
use League\Flysystem\UnableToWriteFile;
use League\Flysystem\Visibility;
use TrioS3Rpc\Client;
use TrioS3Rpc\Flysystem\TrioS3RpcAdapter;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;

/**
 * Flysystem's own conformance suite against SeaweedFS, whose bucket is visibility_mode: none
 * with the bucket visibility private: SeaweedFS keeps no object ACLs, so every object is as
 * visible as the bucket says, and asking for another visibility (a write with "public", as
 * setVisibility) is refused, not silently dropped. As Flysystem's Google Cloud adapter does
 * for uniform bucket-level access, the cases that need per-object visibility are overridden,
 * and only those: each still runs the scenario and checks what such a bucket really does
 * (the bucket's visibility is accepted and kept; another one is refused), instead of
 * asserting a "public" that the service cannot keep. Every other case runs as Flysystem
 * wrote it. Over JSON, so the two suites cover both codecs. The adapter learns the mode
 * from the server (no visibilityMode argument).
 */
final class SeaweedFsAdapterTest extends FilesystemAdapterTestCase
{
    use StoredMimeTypes;

    protected static function createFilesystemAdapter(): FilesystemAdapter
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_UNIX'), Codec::Json);
        return new TrioS3RpcAdapter($client, LiveServer::bucket('fly-sw'), 'suite-' . getmypid());
    }

    /** Overridden: writes "public". The bucket's own visibility is taken; "public" is refused. */
    public function writing_a_file_with_a_stream(): void
    {
        $this->runScenario(function () {
            $adapter = $this->adapter();
            $adapter->writeStream('path.txt', stream_with_contents('contents'), new Config([Config::OPTION_VISIBILITY => Visibility::PRIVATE]));
            $this->assertTrue($adapter->fileExists('path.txt'));
            $this->assertRefusedAsPublic(fn () => $adapter->writeStream('public.txt', stream_with_contents('contents'), new Config([Config::OPTION_VISIBILITY => Visibility::PUBLIC])));
            $this->assertFalse($adapter->fileExists('public.txt'));
        });
    }

    /** Overridden: the first version is written "public"; here with the bucket's visibility. */
    public function overwriting_a_file(): void
    {
        $this->runScenario(function () {
            $adapter = $this->adapter();
            $adapter->write('path.txt', 'contents', new Config());
            $adapter->write('path.txt', 'new contents', new Config(['visibility' => Visibility::PRIVATE]));
            $this->assertEquals('new contents', $adapter->read('path.txt'));
            $this->assertEquals(Visibility::PRIVATE, $adapter->visibility('path.txt')->visibility());
        });
    }

    /** Overridden: per-object visibility. The object has the bucket's (private) visibility, and a change to public is refused. */
    public function setting_visibility(): void
    {
        $adapter = $this->adapter();
        $this->givenWeHaveAnExistingFile('path.txt', 'contents', [Config::OPTION_VISIBILITY => Visibility::PRIVATE]);
        $this->assertEquals(Visibility::PRIVATE, $adapter->visibility('path.txt')->visibility());
        $adapter->setVisibility('path.txt', Visibility::PRIVATE);
        $this->assertEquals(Visibility::PRIVATE, $adapter->visibility('path.txt')->visibility());
        $this->expectException(UnableToSetVisibility::class);
        $adapter->setVisibility('path.txt', Visibility::PUBLIC);
    }

    /** Overridden: per-object visibility (the source is written "public"). The copy has the bucket's visibility. */
    public function copying_a_file(): void
    {
        $this->assertCopyKeepsTheBucketVisibility(false);
    }

    /** Overridden: per-object visibility, as copying_a_file. */
    public function copying_a_file_again(): void
    {
        $this->assertCopyKeepsTheBucketVisibility(false);
    }

    /** Overridden: per-object visibility, as copying_a_file. */
    public function moving_a_file(): void
    {
        $this->assertCopyKeepsTheBucketVisibility(true);
    }

    /**
     * Overridden: a public URL serves an object only when it can be public. In a private
     * bucket without ACLs none can: the "public" write is refused, and the permanent URL of
     * an object is refused by the service; a temporary URL (generating_a_temporary_url, not
     * overridden) is how such a bucket shares.
     */
    public function generating_a_public_url(): void
    {
        $adapter = $this->adapter();
        $this->assertRefusedAsPublic(fn () => $adapter->write('some/path.txt', 'public contents', new Config(['visibility' => 'public'])));
        $adapter->write('some/path.txt', 'private contents', new Config());
        $url = $adapter->publicUrl('some/path.txt', new Config());
        $this->assertStringContainsString('some/path.txt', $url);
        $this->assertFalse(@file_get_contents($url), 'a private bucket must not serve anonymous reads');
    }

    private function assertRefusedAsPublic(callable $write): void
    {
        try {
            $write();
            $this->fail('a "public" write to a private bucket without ACLs must be refused');
        } catch (UnableToWriteFile $e) {
            $this->assertStringContainsString('INVALID_VISIBILITY', $e->getMessage());
            $this->assertStringContainsString('visibility_mode: none', $e->getMessage());
        }
    }

    private function assertCopyKeepsTheBucketVisibility(bool $move): void
    {
        $this->runScenario(function () use ($move) {
            $adapter = $this->adapter();
            $adapter->write('source.txt', 'contents to be copied', new Config([Config::OPTION_VISIBILITY => Visibility::PRIVATE]));
            $move
                ? $adapter->move('source.txt', 'destination.txt', new Config())
                : $adapter->copy('source.txt', 'destination.txt', new Config());
            $this->assertSame(!$move, $adapter->fileExists('source.txt'));
            $this->assertTrue($adapter->fileExists('destination.txt'));
            $this->assertEquals(Visibility::PRIVATE, $adapter->visibility('destination.txt')->visibility());
            $this->assertEquals('text/plain', $adapter->mimeType('destination.txt')->mimeType());
            $this->assertEquals('contents to be copied', $adapter->read('destination.txt'));
        });
    }
}
