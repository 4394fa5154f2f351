<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Client;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Client;
use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\FileNotFound;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\GoridgeTransport;

/** writeStream and readStream against the live server (the 1 GiB run is tests/scripts/gib-round-trip.php). */
final class StreamTest extends TestCase
{
    /** @return array<string, array{Client}> */
    public static function clients(): array
    {
        $cases = [];
        foreach (LiveServer::clients() as $name => [$client]) {
            // Small chunks, so that a few MiB make many UploadChunks and ranged Reads.
            $cases[$name] = [new Client($client->transport(), chunkSize: 1 << 20)];
        }
        return $cases;
    }

    /** @dataProvider clients */
    public function testWriteStreamAndReadStreamRoundTripWithSeeks(Client $client): void
    {
        $bytes = random_bytes((7 << 20) + 12345);
        $source = fopen('php://temp', 'w+b');
        fwrite($source, $bytes);
        rewind($source);
        $path = LiveServer::unique('stream.bin');
        $written = $client->writeStream('sw', $path, $source, contentType: 'application/x-stream');
        self::assertSame(strlen($bytes), $written->size);
        self::assertSame('crc32c:' . hash('crc32c', $bytes), $written->checksum);

        $stream = $client->readStream('sw', $path);
        self::assertTrue(stream_get_meta_data($stream)['seekable']);
        self::assertSame(strlen($bytes), fstat($stream)['size']);
        self::assertSame(hash('sha256', $bytes), hash('sha256', stream_get_contents($stream)));
        self::assertTrue(feof($stream));
        fseek($stream, 5 << 20);
        self::assertSame(substr($bytes, 5 << 20, 100), fread($stream, 100));
        fseek($stream, 10);
        self::assertSame(substr($bytes, 10, 3000), fread($stream, 3000));
        fseek($stream, -5, SEEK_END);
        self::assertSame(substr($bytes, -5), stream_get_contents($stream));
        self::assertSame('application/x-stream', $client->getMetadata('sw', $path)->mimeType);
        fclose($stream);
    }

    /** @dataProvider clients */
    public function testSmallAndEmptyStreamsAreOneWrite(Client $client): void
    {
        foreach (['', 'small'] as $content) {
            $source = fopen('php://memory', 'w+b');
            fwrite($source, $content);
            rewind($source);
            $path = LiveServer::unique('small.txt');
            self::assertSame(strlen($content), $client->writeStream('sw', $path, $source)->size);
            self::assertSame($content, stream_get_contents($client->readStream('sw', $path)));
        }
    }

    public function testANonSeekableSourceUploadsInChunks(): void
    {
        $client = new Client(new GoridgeTransport(LiveServer::env('TRIO_S3RPC_TCP'), Codec::Msgpack), chunkSize: 1 << 20);
        $process = proc_open(['head', '-c', (string) (3 << 20), '/dev/zero'], [1 => ['pipe', 'w']], $pipes);
        self::assertFalse(stream_get_meta_data($pipes[1])['seekable']);
        $path = LiveServer::unique('pipe.bin');
        self::assertSame(3 << 20, $client->writeStream('sw', $path, $pipes[1])->size);
        proc_close($process);
        self::assertSame(hash('sha256', str_repeat("\0", 3 << 20)), hash('sha256', stream_get_contents($client->readStream('sw', $path))));
    }

    public function testReadStreamOfAMissingObjectFailsAtOnce(): void
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'));
        $this->expectException(FileNotFound::class);
        $client->readStream('sw', LiveServer::unique('absent.bin'));
    }

    /** @return array<string, array{Codec}> */
    public static function codecs(): array
    {
        return ['json' => [Codec::Json], 'msgpack' => [Codec::Msgpack]];
    }

    /**
     * A file of several chunks written and read back under a memory_limit of PHP's own
     * memory plus twice the chunk plus 1 MiB (tests/scripts/bounded-streams.php, in a PHP of
     * its own): neither stream holds a chunk more than about once, in either codec.
     *
     * @dataProvider codecs
     */
    public function testStreamsStayWithinTwiceTheChunk(Codec $codec): void
    {
        $chunk = 8 << 20;
        $file = \tempnam(\sys_get_temp_dir(), 'bounded-');
        $bytes = \random_bytes(3 * $chunk + 12345);
        \file_put_contents($file, $bytes);
        try {
            $process = \proc_open(
                [\PHP_BINARY, '-d', 'memory_limit=128M', __DIR__ . '/../scripts/bounded-streams.php', \strtolower($codec->name), $file, (string) $chunk],
                [1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
                $pipes,
            );
            self::assertIsResource($process);
            $output = \stream_get_contents($pipes[1]) . \stream_get_contents($pipes[2]);
            $status = \proc_close($process);
        } finally {
            \unlink($file);
        }
        self::assertSame(0, $status, $output);
        $result = \json_decode($output, true);
        self::assertIsArray($result, $output);
        self::assertSame(\strlen($bytes), $result['size'], $output);
        self::assertSame(\hash('sha256', $bytes), $result['sha256'], $output);
    }

    /**
     * Through a proxy that breaks every connection after 12 MiB, a 40 MiB upload needs
     * several connections: each break resumes from s3.UploadStatus, and the object is exact.
     *
     * @dataProvider codecs
     */
    public function testWriteStreamResumesAfterBrokenConnections(Codec $codec): void
    {
        $transport = new GoridgeTransport(LiveServer::env('TRIO_S3RPC_CUTTING_PROXY'), $codec);
        $client = new Client($transport, chunkSize: 2 << 20, resumeAttempts: 10, resumeDelayMs: 50);
        $bytes = random_bytes(40 << 20);
        $source = fopen('php://temp', 'w+b');
        fwrite($source, $bytes);
        rewind($source);
        $path = LiveServer::unique('resumed.bin');
        $written = $client->writeStream('sw', $path, $source);
        self::assertSame(40 << 20, $written->size);

        $direct = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'), $codec);
        self::assertSame(hash('sha256', $bytes), hash('sha256', stream_get_contents($direct->readStream('sw', $path))));
        $direct->delete('sw', $path);

        // The same proxy without resume: a broken connection is ConnectionFailed.
        $once = new Client(new GoridgeTransport(LiveServer::env('TRIO_S3RPC_CUTTING_PROXY'), $codec), chunkSize: 2 << 20, resumeAttempts: 0);
        rewind($source);
        $this->expectException(ConnectionFailed::class);
        $once->writeStream('sw', $path, $source);
    }
}
