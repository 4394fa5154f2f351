<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Flysystem;

use League\Flysystem\AdapterTestUtilities\FilesystemAdapterTestCase;
use League\Flysystem\Config;
use League\Flysystem\FilesystemAdapter;
use League\Flysystem\UnableToSetVisibility;
use League\Flysystem\Visibility;
use TrioS3Rpc\Client;
use TrioS3Rpc\Flysystem\TrioS3RpcAdapter;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;

/**
 * Flysystem's own conformance suite against SeaweedFS, whose bucket is visibility_mode: none
 * with the bucket visibility private: SeaweedFS keeps no object ACLs, so every object is as
 * visible as the bucket says. As Flysystem's Google Cloud adapter does for uniform
 * bucket-level access, the cases that need per-object visibility are overridden, and only
 * those: each still runs the scenario and checks what such a bucket really does (the
 * object keeps the bucket's visibility; asking for another one fails), instead of asserting
 * a "public" that the service cannot keep. Every other case runs as Flysystem wrote it.
 * Over JSON, so the two suites cover both codecs.
 */
final class SeaweedFsAdapterTest extends FilesystemAdapterTestCase
{
    protected static function createFilesystemAdapter(): FilesystemAdapter
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_UNIX'), Codec::Json);
        return new TrioS3RpcAdapter($client, 'fly-sw', 'suite-' . getmypid(), 'none');
    }

    /** Overridden: per-object visibility. The object has the bucket's (private) visibility, and a change to public is refused. */
    public function setting_visibility(): void
    {
        $adapter = $this->adapter();
        $this->givenWeHaveAnExistingFile('path.txt', 'contents', [Config::OPTION_VISIBILITY => Visibility::PUBLIC]);
        $this->assertEquals(Visibility::PRIVATE, $adapter->visibility('path.txt')->visibility());
        $adapter->setVisibility('path.txt', Visibility::PRIVATE);
        $this->assertEquals(Visibility::PRIVATE, $adapter->visibility('path.txt')->visibility());
        $this->expectException(UnableToSetVisibility::class);
        $adapter->setVisibility('path.txt', Visibility::PUBLIC);
    }

    /** Overridden: per-object visibility (the source was written "public"). The copy has the bucket's visibility. */
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
     * bucket without ACLs none can, so the permanent URL is refused by the service, and a
     * temporary URL (generating_a_temporary_url, not overridden) is how such a bucket shares.
     */
    public function generating_a_public_url(): void
    {
        $adapter = $this->adapter();
        $adapter->write('some/path.txt', 'public contents', new Config(['visibility' => 'public']));
        $url = $adapter->publicUrl('some/path.txt', new Config());
        $this->assertStringContainsString('some/path.txt', $url);
        $this->assertFalse(@file_get_contents($url), 'a private bucket must not serve anonymous reads');
    }

    private function assertCopyKeepsTheBucketVisibility(bool $move): void
    {
        $this->runScenario(function () use ($move) {
            $adapter = $this->adapter();
            $adapter->write('source.txt', 'contents to be copied', new Config([Config::OPTION_VISIBILITY => Visibility::PUBLIC]));
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
