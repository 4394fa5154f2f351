<?php

declare(strict_types=1);

/*
 * Usage: php -d memory_limit=48M stream-bench.php ADDRESS json|msgpack FILE CHUNK_BYTES
 *
 * One writeStream of FILE and one readStream of the object read to its end, each timed and
 * with PHP's peak memory (memory_get_peak_usage(true), reset between the two), printed as
 * one JSON line; the object is deleted. Run by benchmarks/php_streams.py.
 */

require __DIR__ . '/../bootstrap.php';

use TrioS3Rpc\Client;
use TrioS3Rpc\ClientOptions;
use TrioS3Rpc\Transport\Codec;

[, $address, $codec, $file, $chunk] = $argv;
$client = Client::connect($address, $codec === 'msgpack' ? Codec::Msgpack : Codec::Json, new ClientOptions(chunkSize: (int) $chunk, readTimeout: 600.0));
$path = 'php-stream-bench/' . bin2hex(random_bytes(4)) . '.bin';

$source = fopen($file, 'rb');
memory_reset_peak_usage();
$started = hrtime(true);
$written = $client->writeStream('', $path, $source);
$writeSeconds = (hrtime(true) - $started) / 1e9;
$writePeak = memory_get_peak_usage(true);
fclose($source);

memory_reset_peak_usage();
$started = hrtime(true);
$stream = $client->readStream('', $path);
$read = 0;
while (!feof($stream)) {
    $read += strlen((string) fread($stream, 1 << 20));
}
$readSeconds = (hrtime(true) - $started) / 1e9;
$readPeak = memory_get_peak_usage(true);
fclose($stream);
$client->delete('', $path);
if ($read !== $written->size || $written->size !== filesize($file)) {
    fwrite(STDERR, "sizes differ: file " . filesize($file) . ", written {$written->size}, read $read\n");
    exit(1);
}
echo json_encode([
    'bytes' => $read, 'write_seconds' => $writeSeconds, 'write_peak' => $writePeak,
    'read_seconds' => $readSeconds, 'read_peak' => $readPeak,
]), "\n";
