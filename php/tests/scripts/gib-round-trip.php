<?php

declare(strict_types=1);

/*
 * Usage: php -d memory_limit=64M gib-round-trip.php FILE json|msgpack
 *
 * writeStream()s FILE to the server (TRIO_S3RPC_TCP), then fpassthru()s readStream() of the
 * object to stdout, for the caller to compare hashes; deletes the object. Progress and the
 * peak memory go to stderr. Run by tests/php/test_php_suites.py with a 1 GiB file.
 */

require __DIR__ . '/../bootstrap.php';

use TrioS3Rpc\Client;
use TrioS3Rpc\Transport\Codec;

[, $file, $codec] = $argv;
$client = Client::connect(getenv('TRIO_S3RPC_TCP'), $codec === 'msgpack' ? Codec::Msgpack : Codec::Json);
$path = 'gib/' . bin2hex(random_bytes(4)) . '.bin';

$source = fopen($file, 'rb');
$started = microtime(true);
$written = $client->writeStream('sw', $path, $source);
fclose($source);
$uploaded = microtime(true);
fprintf(STDERR, "writeStream: %d bytes in %.1f s, peak memory %.1f MiB\n", $written->size, $uploaded - $started, memory_get_peak_usage(true) / 1048576);

$stream = $client->readStream('sw', $path);
$sent = fpassthru($stream);
fclose($stream);
fprintf(STDERR, "fpassthru(readStream): %d bytes in %.1f s, peak memory %.1f MiB\n", $sent, microtime(true) - $uploaded, memory_get_peak_usage(true) / 1048576);
$client->delete('sw', $path);
exit($sent === $written->size && $written->size === filesize($file) ? 0 : 1);
