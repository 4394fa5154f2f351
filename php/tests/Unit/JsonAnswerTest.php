<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\GoridgeTransport;

/**
 * Large JSON answers, whose base64 "content" the transport receives apart from the rest,
 * decode exactly as json_decode decodes them, whatever their shape. Each answer comes from
 * a forked process that plays the server for one call on a unix socket.
 */
final class JsonAnswerTest extends TestCase
{
    /** @return iterable<string, array{string}> */
    public static function answers(): iterable
    {
        $b64 = \base64_encode(\random_bytes(300 << 10));
        yield 'as s3.Read answers' => ['{"size":524288000,"mime_type":"application/octet-stream","last_modified":1700000000,"etag":"\"9b2\"","content":"' . $b64 . '"}'];
        yield 'content alone' => ['{"content":"' . $b64 . '"}'];
        yield 'a head past the scan' => ['{"etag":"' . \str_repeat('e', 10000) . '","content":"' . $b64 . '"}'];
        yield 'escaped slashes' => ['{"size":1,"content":"' . \str_replace('/', '\/', $b64) . '"}'];
        yield 'content not last' => ['{"content":"' . $b64 . '","size":1}'];
        yield 'a nested content first' => ['{"a":{"content":"x"},"content":"' . $b64 . '"}'];
        yield 'no content' => ['{"size":1,"text":"' . $b64 . '"}'];
        yield 'a string after content' => ['{"content":"' . $b64 . '","x":"y"}'];
        yield 'text in content' => ['{"size":1,"content":"' . \str_repeat('not base64 ', 10000) . '"}'];
    }

    /** @dataProvider answers */
    public function testALargeAnswerDecodesAsJsonDecodeDoes(string $answer): void
    {
        $decoded = self::callAnsweredWith(self::frame($answer));
        self::assertTrue(\json_decode($answer, true) === $decoded);
    }

    public function testAnAnswerCutInItsContentIsABrokenConnection(): void
    {
        $answer = '{"size":1,"content":"' . \base64_encode(\random_bytes(300 << 10)) . '"}';
        $this->expectException(ConnectionFailed::class);
        $this->expectExceptionMessage('the connection closed');
        self::callAnsweredWith(\substr(self::frame($answer), 0, 200 << 10));
    }

    private static function frame(string $answer): string
    {
        $method = 's3.Read';
        return GoridgeTransport::header(Codec::Json->value, \strlen($method) + \strlen($answer), 1, \strlen($method)) . $method . $answer;
    }

    /** What an s3.Read call decodes when a forked server answers it with $bytes and closes. */
    private static function callAnsweredWith(string $bytes): mixed
    {
        if (!\function_exists('pcntl_fork')) {
            self::markTestSkipped('needs ext-pcntl');
        }
        $path = \sys_get_temp_dir() . '/trio-s3rpc-json-' . \bin2hex(\random_bytes(4)) . '.sock';
        $server = \stream_socket_server("unix://$path");
        self::assertNotFalse($server);
        $child = \pcntl_fork();
        if ($child === 0) {
            $connection = \stream_socket_accept($server, 10);
            if ($connection !== false) {
                $call = \unpack('Cvw/Cflags/Vlength', \fread($connection, 12));
                \stream_get_contents($connection, 8 + $call['length']);
                \fwrite($connection, $bytes);
                \fclose($connection);
            }
            \posix_kill(\posix_getpid(), \SIGKILL); // no PHPUnit shutdown in the child
        }
        try {
            return (new GoridgeTransport("unix://$path", Codec::Json))->call('s3.Read', ['pathname' => 'a.bin']);
        } finally {
            \pcntl_waitpid($child, $status);
            \fclose($server);
            @\unlink($path);
        }
    }
}
