<?php
// A RoadRunner HTTP worker that stores each request body through trio-s3rpc.
// composer require spiral/roadrunner-http nyholm/psr7
// The same code works with the Go S3 plugin: only .rr.yaml changed.

use Nyholm\Psr7\Factory\Psr17Factory;
use Nyholm\Psr7\Response;
use Spiral\Goridge\RPC\RPC;
use Spiral\RoadRunner\Environment;
use Spiral\RoadRunner\Http\PSR7Worker;
use Spiral\RoadRunner\Worker;

require __DIR__ . '/vendor/autoload.php';

$factory = new Psr17Factory();
$http = new PSR7Worker(Worker::create(), $factory, $factory, $factory);
// RR_RPC (server.env) is trio-s3rpc: it serves s3.* and relays the rest to RoadRunner.
$rpc = RPC::create(Environment::fromGlobals()->getRPCAddress());

while ($request = $http->waitRequest()) {
    try {
        $pathname = 'requests/' . bin2hex(random_bytes(8)) . '.txt';
        $rpc->call('s3.Write', [
            'bucket' => 'uploads',
            'pathname' => $pathname,
            'content' => base64_encode((string) $request->getBody()),
        ]);
        $meta = $rpc->call('s3.GetMetadata', ['bucket' => 'uploads', 'pathname' => $pathname]);
        // RoadRunner's own informer service, through the same RPC connection.
        $workers = $rpc->call('informer.Workers', 'http');
        $http->respond(new Response(200, ['Content-Type' => 'application/json'], json_encode([
            'stored' => $pathname,
            'size' => $meta['size'],
            'http_workers' => count($workers['workers'] ?? []),
        ])));
    } catch (\Throwable $e) {
        $http->respond(new Response(500, [], $e->getMessage()));
    }
}
