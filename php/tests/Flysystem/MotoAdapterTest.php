<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Flysystem;

use League\Flysystem\AdapterTestUtilities\FilesystemAdapterTestCase;
use League\Flysystem\FilesystemAdapter;
use TrioS3Rpc\Client;
use TrioS3Rpc\Flysystem\TrioS3RpcAdapter;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;

/**
 * Flysystem's own conformance suite, whole and unchanged, against a moto bucket with object
 * ACLs (visibility_mode: acl), over msgpack.
 */
final class MotoAdapterTest extends FilesystemAdapterTestCase
{
    protected static function createFilesystemAdapter(): FilesystemAdapter
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'), Codec::Msgpack);
        return new TrioS3RpcAdapter($client, 'fly-moto', 'suite-' . getmypid(), 'acl');
    }
}
