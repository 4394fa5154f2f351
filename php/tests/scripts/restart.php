<?php

declare(strict_types=1);

/*
 * Usage: php restart.php   (run by tests/php/test_php_suites.py, which restarts the server)
 *
 * A long-running worker across a gateway restart. Before it: the package's own transport
 * (both codecs) with a readStream one range in, and Spiral-like clients (ExternalRpc
 * closing the relay; ExternalRpc with a reconnect factory), each with a call made. Then
 * "ready" on stdout and a line awaited on stdin: the harness has stopped the server and
 * starts it again meanwhile. Then every client must work again, the stream must resume
 * where it was, same version; one line per check on stdout, "done" at the end.
 */

require __DIR__ . '/../bootstrap.php';

use TrioS3Rpc\Client;
use TrioS3Rpc\ClientOptions;
use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Tests\Doubles\SpiralLikeRpc;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\ExternalRpc;

function check(bool $ok, string $what): void
{
    echo ($ok ? 'ok ' : 'FAILED ') . $what . "\n";
    if (!$ok) {
        exit(1);
    }
}

$address = getenv('TRIO_S3RPC_RESTARTING');
$path = 'restart/' . bin2hex(random_bytes(4)) . '.bin';
$bytes = random_bytes(6 << 20);
$options = new ClientOptions(chunkSize: 1 << 20);   // the default resume budget
$json = Client::connect($address, Codec::Json, $options);
$msgpack = Client::connect($address, Codec::Msgpack, $options);
$json->write('sw', $path, $bytes);
$stream = $msgpack->readStream('sw', $path);
check(stream_get_contents($stream, 1 << 20) === substr($bytes, 0, 1 << 20), 'first range read before the restart');

$closing = new SpiralLikeRpc($address);
$spiral = new Client(new ExternalRpc($closing));
$factoryMade = 0;
$factory = new ExternalRpc(new SpiralLikeRpc($address), reconnect: function () use ($address, &$factoryMade) {
    $factoryMade++;
    return new SpiralLikeRpc($address);
});
$spiralFactory = new Client($factory);
check($spiral->exists('sw', $path) && $spiralFactory->exists('sw', $path), 'Spiral-like clients before the restart');

echo "ready\n";
fgets(STDIN);   // the server stopped; it is being started again

// The stream's next range meets a server that is down or just back: it resumes.
$rest = stream_get_contents($stream);
check($rest === substr($bytes, 1 << 20), 'readStream resumed after the restart, same bytes');

// The own transport: the closed idle connection is replaced before the call.
check($json->exists('sw', $path), 'own transport (json): first call after the restart succeeds');
$written = $msgpack->write('sw', $path . '.after', 'after');   // not idempotent: still not lost
check($written->size === 5, 'own transport (msgpack): a write after the restart succeeds');

// Spiral-like, relay closed by reset(): an idempotent call is retried on a new socket.
check($spiral->exists('sw', $path), 'ExternalRpc: an idempotent call after the restart succeeds');
check($closing->connections() === 2, 'ExternalRpc: reset() made the relay connect anew');
// A write may be lost once on a broken socket, never every call after it.
try {
    $spiralFactory->write('sw', $path . '.spiral', 'x');
    $first = 'written';
} catch (ConnectionFailed $e) {
    $first = 'ConnectionFailed';
}
$spiralFactory->write('sw', $path . '.spiral', 'x');
check($factoryMade >= 1, "ExternalRpc with a factory: a new RPC after the restart (first write: $first)");
check($spiralFactory->read('sw', $path . '.spiral')->content === 'x', 'ExternalRpc with a factory: calls work again');

$json->deleteMany('sw', [$path, $path . '.after', $path . '.spiral']);
echo "done\n";
