<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Client;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Client;
use TrioS3Rpc\ClientOptions;
use TrioS3Rpc\Exception\ObjectChanged;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\GoridgeTransport;

/**
 * readStream bound to one version: an overwrite of the same size within the same second
 * (which size and last_modified cannot tell apart) throws ObjectChanged from the read,
 * never a mix of old and new bytes.
 */
final class VersionTest extends TestCase
{
    /** @return array<string, array{Codec}> */
    public static function codecs(): array
    {
        return ['json' => [Codec::Json], 'msgpack' => [Codec::Msgpack]];
    }

    /** @dataProvider codecs */
    public function testAnOverwriteOfTheSameSizeMidStreamIsObjectChanged(Codec $codec): void
    {
        $client = new Client(new GoridgeTransport(LiveServer::env('TRIO_S3RPC_TCP'), $codec), new ClientOptions(chunkSize: 1 << 20));
        for ($try = 0; $try < 5; $try++) {
            $path = LiveServer::unique('versions.bin');
            $old = str_repeat('A', 4 << 20);
            $client->write('sw', $path, $old);
            $stream = $client->readStream('sw', $path);
            $before = $client->getMetadata('sw', $path);
            $client->write('sw', $path, str_repeat('B', 4 << 20));   // same size
            $after = $client->getMetadata('sw', $path);
            self::assertSame($before->size, $after->size);
            self::assertNotSame($before->etag, $after->etag);
            $read = '';
            try {
                while (!feof($stream)) {
                    $read .= fread($stream, 1 << 16);
                }
                self::fail('read ' . strlen($read) . ' bytes of a replaced object without ObjectChanged');
            } catch (ObjectChanged $changed) {
                self::assertSame('OBJECT_CHANGED', $changed->errorCode);
                self::assertStringContainsString($path, $changed->details);
            }
            // Whatever was read before the error is all of the old version.
            self::assertSame(str_repeat('A', strlen($read)), $read);
            $client->delete('sw', $path);
        }
    }

    /** @dataProvider codecs */
    public function testARangeOfAnotherVersionIsRefusedByTheServer(Codec $codec): void
    {
        $client = new Client(new GoridgeTransport(LiveServer::env('TRIO_S3RPC_TCP'), $codec));
        $path = LiveServer::unique('if-match.txt');
        $client->write('sw', $path, 'first');
        $etag = $client->read('sw', $path, 0, 2)->etag;
        self::assertNotSame('', $etag);
        self::assertSame('rst', $client->read('sw', $path, 2, 3, ifMatch: $etag)->content);
        $client->write('sw', $path, 'other');
        $this->expectException(ObjectChanged::class);
        $client->read('sw', $path, 2, 3, ifMatch: $etag);
    }
}
