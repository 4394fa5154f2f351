<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Client;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Client;
use TrioS3Rpc\Exception;
use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\RpcError;
use TrioS3Rpc\Exception\TrioS3RpcException;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\GoridgeTransport;

/**
 * Every error code the server answers arrives as its own exception class, with code,
 * message and details. Each code is provoked on the live server, SHUTTING_DOWN in
 * tests/Stopping (it needs a server being stopped). INTERNAL_ERROR (a server bug) and
 * RELAY_UNAVAILABLE (RoadRunner's RPC behind s3.relay) cannot be provoked here, so for those,
 * as for all, the wire text is also mapped directly.
 */
final class ErrorCodesTest extends TestCase
{
    /** @return array<string, array{Client}> */
    public static function clients(): array
    {
        return LiveServer::clients();
    }

    /**
     * @return array<string, array{string, class-string<RpcError>, callable(Client): mixed}>
     */
    public static function provocations(): array
    {
        $cases = [
            'BUCKET_NOT_FOUND' => [Exception\BucketNotFound::class, static fn (Client $c) => $c->read('no-such-name', 'a.txt')],
            'FILE_NOT_FOUND' => [Exception\FileNotFound::class, static fn (Client $c) => $c->getMetadata('sw', LiveServer::unique('missing.txt'))],
            'INVALID_CONFIG' => [Exception\InvalidConfig::class, static fn (Client $c) => $c->registerBucket('bad-' . bin2hex(random_bytes(3)), 'no-such-server', 'b')],
            'S3_OPERATION_FAILED' => [Exception\S3OperationFailed::class, static fn (Client $c) => $c->write('no-such-bucket', 'a.txt', 'x')],
            'PERMISSION_DENIED' => [Exception\PermissionDenied::class, static fn (Client $c) => $c->write('denied', 'a.txt', 'x')],
            'INVALID_PATHNAME' => [Exception\InvalidPathname::class, static fn (Client $c) => $c->write('sw', '../escape.txt', 'x')],
            'BUCKET_ALREADY_EXISTS' => [Exception\BucketAlreadyExists::class, static fn (Client $c) => $c->registerBucket('sw', 'seaweedfs', 'test-bucket')],
            'INVALID_VISIBILITY' => [Exception\InvalidVisibility::class, static fn (Client $c) => $c->write('moto', 'a.txt', 'x', visibility: 'world-readable')],
            'OPERATION_TIMEOUT' => [Exception\OperationTimeout::class, static fn (Client $c) => $c->withControl(timeout: 0.000001)->write('sw', LiveServer::unique('slow.bin'), random_bytes(1 << 20))],
            'INVALID_REQUEST' => [Exception\InvalidRequest::class, static fn (Client $c) => $c->call('s3.Read', ['bucket' => 'sw'])],
            'METHOD_NOT_FOUND' => [Exception\MethodNotFound::class, static fn (Client $c) => $c->call('s3.Nonexistent', [])],
            'UPLOAD_NOT_FOUND' => [Exception\UploadNotFound::class, static fn (Client $c) => $c->uploadStatus('not-an-upload-id')],
        ];
        $product = [];
        foreach (LiveServer::clients() as $connection => [$client]) {
            foreach ($cases as $code => [$class, $provoke]) {
                $product["$code over $connection"] = [$code, $class, $provoke, $client];
            }
        }
        return $product;
    }

    /**
     * @dataProvider provocations
     * @param class-string<RpcError> $class
     */
    public function testEachErrorCodeIsItsOwnExceptionClass(string $code, string $class, callable $provoke, Client $client): void
    {
        try {
            $provoke($client);
            self::fail("expected $code");
        } catch (RpcError $e) {
            self::assertInstanceOf($class, $e, $e->getMessage());
            self::assertInstanceOf(TrioS3RpcException::class, $e);
            self::assertSame($code, $e->errorCode);
            self::assertNotSame('', $e->errorMessage);
            self::assertStringStartsWith("$code: {$e->errorMessage}", $e->getMessage());
        }
    }

    public function testCancelledWhileAnotherConnectionStopsTheTransfer(): void
    {
        $root = LiveServer::env('TRIO_S3RPC_LOCAL_ROOT');
        $source = tempnam($root, 'cancel');
        $file = fopen($source, 'wb');
        for ($i = 0; $i < 96; $i++) {
            fwrite($file, random_bytes(1 << 20));
        }
        fclose($file);
        $transferId = 'cancel-' . bin2hex(random_bytes(4));
        $pid = pcntl_fork();
        if ($pid === 0) {
            // The child makes the long call on its own connection and reports what it got.
            $client = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'));
            try {
                $client->withControl(transferId: $transferId)->writeFile('sw', LiveServer::unique('cancelled.bin'), $source);
                $code = 1;
            } catch (Exception\Cancelled $e) {
                $code = $e->errorCode === 'CANCELLED' ? 0 : 2;
            } catch (\Throwable $e) {
                $code = 3;
            }
            posix_kill(posix_getpid(), $code === 0 ? SIGUSR1 : SIGUSR2);
            exit($code);
        }
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'));
        $state = '';
        for ($i = 0; $i < 500 && $state !== 'running'; $i++) {
            try {
                $state = $client->transferStatus($transferId)->state;
            } catch (RpcError) {
                usleep(10_000); // not started yet
            }
        }
        self::assertSame('running', $state);
        $client->cancel($transferId);
        pcntl_waitpid($pid, $status);
        unlink($source);
        self::assertTrue(pcntl_wifsignaled($status), 'the child ended without reporting');
        self::assertSame(SIGUSR1, pcntl_wtermsig($status), 'the child did not get Cancelled');
        self::assertSame('cancelled', $client->transferStatus($transferId)->state);
    }

    /** @return array<string, array{string}> */
    public static function codes(): array
    {
        return array_combine(array_keys(RpcError::CLASSES), array_map(static fn ($c) => [$c], array_keys(RpcError::CLASSES)));
    }

    /** @dataProvider codes */
    public function testEveryCodeOfTheContractMapsFromItsWireText(string $code): void
    {
        $e = RpcError::fromWireText("$code: something went wrong (bucket: b, pathname: a (1).txt)");
        self::assertInstanceOf(RpcError::CLASSES[$code], $e);
        self::assertSame($code, $e->errorCode);
        self::assertSame('something went wrong', $e->errorMessage);
        self::assertSame('bucket: b, pathname: a (1).txt', $e->details);
        $plain = RpcError::fromWireText("$code: no details here");
        self::assertSame('no details here', $plain->errorMessage);
        self::assertSame('', $plain->details);
    }

    public function testAnUnknownCodeIsStillAnRpcError(): void
    {
        $e = RpcError::fromWireText('NEW_CODE: from a newer server');
        self::assertInstanceOf(Exception\UnknownError::class, $e);
        self::assertSame('NEW_CODE', $e->errorCode);
    }

    /** @return array<string, array{string}> */
    public static function unreachable(): array
    {
        return ['tcp' => ['tcp://127.0.0.1:9'], 'unix' => ['unix:///nonexistent/trio-s3rpc.sock']];
    }

    /** @dataProvider unreachable */
    public function testAnUnreachableServerIsConnectionFailed(string $address): void
    {
        $client = new Client(new GoridgeTransport($address, Codec::Json, connectTimeout: 2));
        $this->expectException(ConnectionFailed::class);
        $this->expectExceptionMessage("cannot connect to $address");
        $client->listBuckets();
    }
}
