<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Flysystem;

use League\Flysystem\AdapterTestUtilities\FilesystemAdapterTestCase;
use League\Flysystem\Config;
use League\Flysystem\FilesystemAdapter;
use League\Flysystem\Visibility;
use TrioS3Rpc\Client;
use TrioS3Rpc\Flysystem\TrioS3RpcAdapter;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;

/**
 * Flysystem's own conformance suite, unchanged but for the one case StoredMimeTypes explains,
 * against a bucket of Ceph's RADOS Gateway (visibility_mode: acl, learnt from the server),
 * over msgpack: a production store whose object ACLs are
 * real, so "public" and "private" are what an anonymous request meets, not what a mock
 * records. Then that, seen without credentials.
 */
final class RgwAdapterTest extends FilesystemAdapterTestCase
{
    use StoredMimeTypes;

    protected static function createFilesystemAdapter(): FilesystemAdapter
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_RGW_TCP'), Codec::Msgpack);
        return new TrioS3RpcAdapter($client, LiveServer::bucket('fly-rgw'), 'suite-' . getmypid());
    }

    /** @test */
    public function public_urls_serve_public_files_only_to_anonymous_readers(): void
    {
        $adapter = $this->adapter();
        $this->assertInstanceOf(TrioS3RpcAdapter::class, $adapter);
        $adapter->write('open.txt', 'for all', new Config([Config::OPTION_VISIBILITY => Visibility::PUBLIC]));
        $adapter->write('closed.txt', 'for me', new Config([Config::OPTION_VISIBILITY => Visibility::PRIVATE]));
        $this->assertSame('for all', file_get_contents($adapter->publicUrl('open.txt', new Config())));
        $this->assertFalse(@file_get_contents($adapter->publicUrl('closed.txt', new Config())));
        $this->assertStringContainsString('403', $http_response_header[0]);
        $adapter->setVisibility('closed.txt', Visibility::PUBLIC);
        $this->assertSame('for me', file_get_contents($adapter->publicUrl('closed.txt', new Config())));
    }
}
