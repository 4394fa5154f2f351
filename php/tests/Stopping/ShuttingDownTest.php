<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Stopping;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Client;
use TrioS3Rpc\Exception\ShuttingDown;
use TrioS3Rpc\Tests\LiveServer;

/**
 * SHUTTING_DOWN, provoked live: the harness (tests/php/test_php_suites.py) stops the server
 * while this WriteFile runs; past its one-second grace period the call is cancelled and
 * answered SHUTTING_DOWN, which arrives as its own exception class.
 */
final class ShuttingDownTest extends TestCase
{
    public function testACallCutByTheShutdownGracePeriodIsShuttingDown(): void
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_STOPPING'));
        $source = LiveServer::env('TRIO_S3RPC_LOCAL_ROOT') . '/sparse-1g.bin';
        try {
            $client->withControl(transferId: LiveServer::env('TRIO_S3RPC_STOPPING_TRANSFER'))
                ->writeFile('sw', LiveServer::unique('stopping.bin'), $source);
            self::fail('the WriteFile finished before the server stopped');
        } catch (ShuttingDown $e) {
            self::assertSame('SHUTTING_DOWN', $e->errorCode);
            self::assertNotSame('', $e->errorMessage);
        }
    }
}
