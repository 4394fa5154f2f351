<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Exception\ConnectionFailed;

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
        return OneCallServer::frame($answer);
    }

    /** What an s3.Read call decodes when a forked server answers it with $bytes and closes. */
    private static function callAnsweredWith(string $bytes): mixed
    {
        return OneCallServer::call($bytes)[0];
    }
}
