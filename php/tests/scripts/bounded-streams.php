<?php

declare(strict_types=1);

/*
 * Usage: php bounded-streams.php json|msgpack FILE CHUNK_BYTES
 *
 * writeStream()s FILE to the server (TRIO_S3RPC_TCP) in chunks of CHUNK_BYTES, then hashes
 * readStream() of the object to its end, under a memory_limit of what PHP holds once this
 * script, the package and the connection are loaded, plus twice the chunk, plus 1 MiB: past
 * it PHP stops with "Allowed memory size ... exhausted". Prints one JSON line: the size
 * written, the SHA-256 read back, and each direction's peak above the start
 * (memory_get_peak_usage(true), as the limit counts); deletes the object. Run by
 * tests/Client/StreamTest.php.
 */

require __DIR__ . '/../bootstrap.php';

use TrioS3Rpc\Client;
use TrioS3Rpc\ClientOptions;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;

[, $codec, $file, $chunk] = $argv;
$chunk = (int) $chunk;
$options = new ClientOptions(chunkSize: $chunk);
$client = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'), $codec === 'msgpack' ? Codec::Msgpack : Codec::Json, $options);
$path = LiveServer::unique('bounded.bin');
$bucket = LiveServer::bucket('sw');
$client->exists($bucket, $path);   // connected, and the call path loaded

$start = memory_get_usage(true);
if (ini_set('memory_limit', (string) ($start + 2 * $chunk + (1 << 20))) === false) {
    fwrite(STDERR, "cannot set memory_limit\n");
    exit(2);
}

$source = fopen($file, 'rb');
memory_reset_peak_usage();
$written = $client->writeStream($bucket, $path, $source);
$writePeak = memory_get_peak_usage(true) - $start;
fclose($source);

memory_reset_peak_usage();
$stream = $client->readStream($bucket, $path);
$hash = hash_init('sha256');
hash_update_stream($hash, $stream);
fclose($stream);
$readPeak = memory_get_peak_usage(true) - $start;
$client->delete($bucket, $path);

echo json_encode([
    'size' => $written->size, 'sha256' => hash_final($hash),
    'write_peak' => $writePeak, 'read_peak' => $readPeak, 'limit' => ini_get('memory_limit'),
]), "\n";
