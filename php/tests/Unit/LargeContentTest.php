<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Stream\Block;
use TrioS3Rpc\Transport\Base64;
use TrioS3Rpc\Transport\Codec;

/**
 * The pieces that keep large content from being held twice give the same bytes as the
 * plain way: a Base64 sent a piece at a time is the frame its whole text makes, a block
 * decoded as it is read is what base64_decode gives, and a large msgpack answer whose
 * content is received apart decodes as msgpack_unpack decodes it.
 */
final class LargeContentTest extends TestCase
{
    public function testABase64IsTheTextOfItsBytes(): void
    {
        foreach ([0, 1, 2, 3, Base64::PIECE - 1, Base64::PIECE, 3 * Base64::PIECE + 2] as $size) {
            $bytes = $size > 0 ? \random_bytes($size) : '';
            $base64 = new Base64($bytes);
            self::assertSame(\base64_encode($bytes), \implode('', \iterator_to_array($base64->pieces(), false)), "$size bytes");
            self::assertSame(\strlen(\base64_encode($bytes)), $base64->length(), "$size bytes");
            self::assertSame(\json_encode(['content' => \base64_encode($bytes)]), \json_encode(['content' => $base64]));
        }
    }

    public function testACallWithABase64SendsTheFrameOfItsText(): void
    {
        $bytes = \random_bytes(3 * Base64::PIECE + 1);
        $frames = [];
        foreach ([new Base64($bytes), \base64_encode($bytes)] as $content) {
            [$answer, $frames[]] = OneCallServer::call(
                OneCallServer::frame('{"size":5}', Codec::Json, 's3.UploadChunk'),
                Codec::Json,
                's3.UploadChunk',
                ['upload_id' => 'u', 'content' => $content, 'offset' => 5],
            );
            self::assertSame(['size' => 5], $answer);
        }
        self::assertSame(\bin2hex(\substr($frames[1], 0, 20)), \bin2hex(\substr($frames[0], 0, 20)));
        self::assertTrue($frames[0] === $frames[1], 'the frames differ past their header');
    }

    /** @return iterable<string, array{string}> */
    public static function blockTexts(): iterable
    {
        $bytes = \random_bytes(3 * Base64::SLICE + 100);
        foreach ([0, 1, 2] as $cut) {
            yield "$cut padding" => [\base64_encode(\substr($bytes, $cut))];
        }
        yield 'empty' => [''];
        yield 'a newline (strict base64_decode skips it)' => [\chunk_split(\base64_encode($bytes), 76, "\n")];
        yield 'a pad in a slice before the last' => [\base64_encode(\substr($bytes, 0, Base64::SLICE / 4 * 3 - 1)) . \base64_encode($bytes)];
        yield 'an unknown byte' => ['QUJD' . \str_repeat('A', Base64::SLICE) . "\x01EVG"];
        yield 'three pads' => [\base64_encode($bytes) . 'Q==='];
    }

    /** @dataProvider blockTexts */
    public function testABlockReadsTheBytesStrictBase64DecodeGives(string $text): void
    {
        $expected = \base64_decode($text, true);
        try {
            $block = Block::of($text, true);
        } catch (ConnectionFailed $e) {
            self::assertFalse($expected, "refused: {$e->getMessage()}");
            return;
        }
        self::assertNotFalse($expected, 'accepted what strict base64_decode refuses');
        self::assertSame(\strlen($expected), $block->length);
        $read = '';
        for ($offset = 0; $offset < $block->length; $offset += 8191) {
            $read .= $block->bytesAt($offset, 8191);
        }
        self::assertTrue($expected === $read);
        foreach ([[0, 1], [1, 1], [2, 5], [$block->length - 1, 10], [$block->length, 5], [7, 0]] as [$offset, $length]) {
            self::assertSame(\bin2hex(\substr($expected, $offset, $length)), \bin2hex($block->bytesAt($offset, $length)), "$offset, $length");
        }
    }

    /** @return iterable<string, array{string}> */
    public static function msgpackAnswers(): iterable
    {
        $content = \random_bytes(300 << 10);
        $read = ['size' => 524288000, 'mime_type' => 'application/octet-stream', 'last_modified' => 1700000000, 'etag' => '"9b2"'];
        $bin = "\xc6" . \pack('N', \strlen($content)) . $content;
        yield 'as s3.Read answers (bin)' => ["\x85\xa7content" . $bin . \substr(\msgpack_pack($read), 1)];
        yield 'content as str' => [\msgpack_pack(['content' => $content] + $read)];
        yield 'content alone' => ["\x81\xa7content" . $bin];
        yield 'content not first' => [\msgpack_pack($read + ['content' => $content])];
        yield 'content twice' => ["\x82\xa7content" . $bin . "\xa7content\xa1x"];
        yield 'a map of 16 entries' => ["\xde\x00\x10\xa7content" . $bin . \substr(\msgpack_pack(\array_fill_keys(\range(1, 15), 'v')), 1)];
        yield 'a length past the end' => ["\x82\xa7content\xc6" . \pack('N', 10 << 20) . $content];
        yield 'a list' => [\msgpack_pack([$content, 1])];
    }

    /** @dataProvider msgpackAnswers */
    public function testALargeMsgpackAnswerDecodesAsMsgpackUnpackDoes(string $answer): void
    {
        try {
            [$decoded] = OneCallServer::call(OneCallServer::frame($answer, Codec::Msgpack), Codec::Msgpack);
        } catch (ConnectionFailed $e) {
            self::assertFalse(@\msgpack_unpack($answer), "refused: {$e->getMessage()}");
            return;
        }
        self::assertTrue(\msgpack_unpack($answer) === $decoded);
    }
}
