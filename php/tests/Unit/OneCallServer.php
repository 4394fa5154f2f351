<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use PHPUnit\Framework\Assert;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\GoridgeTransport;

/**
 * A server for one call, for offline tests of the transport: a forked process on a unix
 * socket receives one request frame, answers it with the bytes it is given and closes.
 */
final class OneCallServer
{
    /**
     * What a call through GoridgeTransport decodes when the server answers $answer, and the
     * request frame the server received.
     *
     * @return array{mixed, string}
     */
    public static function call(string $answer, Codec $codec = Codec::Json, string $method = 's3.Read', mixed $payload = ['pathname' => 'a.bin']): array
    {
        if (!\function_exists('pcntl_fork')) {
            Assert::markTestSkipped('needs ext-pcntl');
        }
        $name = \sys_get_temp_dir() . '/trio-s3rpc-call-' . \bin2hex(\random_bytes(4));
        $server = \stream_socket_server("unix://$name.sock");
        Assert::assertNotFalse($server);
        $child = \pcntl_fork();
        if ($child === 0) {
            $connection = \stream_socket_accept($server, 10);
            if ($connection !== false) {
                $head = (string) \fread($connection, 12);
                $call = \unpack('Cvw/Cflags/Vlength', $head);
                \file_put_contents("$name.request", $head . \stream_get_contents($connection, 8 + $call['length']));
                \fwrite($connection, $answer);
                \fclose($connection);
            }
            \posix_kill(\posix_getpid(), \SIGKILL); // no PHPUnit shutdown in the child
        }
        try {
            $decoded = (new GoridgeTransport("unix://$name.sock", $codec))->call($method, $payload);
        } finally {
            \pcntl_waitpid($child, $status);
            \fclose($server);
            @\unlink("$name.sock");
            $request = (string) @\file_get_contents("$name.request");
            @\unlink("$name.request");
        }
        return [$decoded, $request];
    }

    /** An answer frame to $method carrying $result. */
    public static function frame(string $result, Codec $codec = Codec::Json, string $method = 's3.Read'): string
    {
        return GoridgeTransport::header($codec->value, \strlen($method) + \strlen($result), 1, \strlen($method)) . $method . $result;
    }
}
