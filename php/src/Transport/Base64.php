<?php

declare(strict_types=1);

namespace TrioS3Rpc\Transport;

/**
 * Bytes that travel as base64 text (the "content" of a call under JSON), and the checks and
 * decoding of such text that answers get.
 *
 * GoridgeTransport sends a Base64 one piece at a time. A frame's header carries the
 * payload's length, which for base64 is known from the bytes alone (4 × ⌈n/3⌉), so the
 * text is made PIECE bytes at a time as it is written to the socket. The bytes, their whole
 * text and a frame holding that text never exist at once; only the bytes and one piece do.
 * Anything that JSON-encodes a Base64 whole (Codec::encode, another transport's codec) gets
 * its text from jsonSerialize().
 */
final class Base64 implements \JsonSerializable
{
    /**
     * Bytes encoded at a time: a multiple of 3, so the pieces' texts join to the whole
     * text. Small, so a piece and its text fit in PHP's first 2 MiB block of memory.
     */
    public const PIECE = 48 << 10;

    /** Text checked at a time by isPlain(): a multiple of 4. */
    public const SLICE = 64 << 10;

    public function __construct(public readonly string $bytes)
    {
    }

    /** The length of the text. */
    public function length(): int
    {
        return \intdiv(\strlen($this->bytes) + 2, 3) * 4;
    }

    /**
     * The text, PIECE bytes at a time.
     *
     * @return \Generator<int, string>
     */
    public function pieces(): \Generator
    {
        $total = \strlen($this->bytes);
        for ($offset = 0; $offset < $total; $offset += self::PIECE) {
            yield \base64_encode(\substr($this->bytes, $offset, self::PIECE));
        }
    }

    public function jsonSerialize(): string
    {
        return \base64_encode($this->bytes);
    }

    /**
     * base64_decode($text, true), faster. The strict decoder goes byte by byte; the default
     * one is vectorised but skips whatever is not base64 (and '=' anywhere), so its answer
     * is taken only when its length shows nothing was skipped: for whole groups of 4 with
     * p trailing '=', exactly 3/4 of the length less p bytes. Anything else is decoded
     * strictly, so the answer (bytes or false) is always the strict decoder's.
     */
    public static function decode(string $text): string|false
    {
        $length = \strlen($text);
        if ($length % 4 === 0 && $length > 0) {
            $bytes = \base64_decode($text);
            if ($bytes !== false && \strlen($bytes) === \intdiv($length, 4) * 3 - self::padding($text)) {
                return $bytes;
            }
        }
        return \base64_decode($text, true);
    }

    /**
     * Whether $text is whole groups of 4 of the base64 alphabet with '=' only as its last
     * one or two bytes, as the server sends it. Then every piece of it that starts at a
     * multiple of 4 and holds whole groups decodes on its own (base64_decode) to the bytes
     * it stands for in the whole, and the whole decodes as decode() would: a reader can
     * decode such text a piece at a time, as it is read. Checked SLICE bytes at a time
     * (the same length test as decode()'s), so the whole is never decoded at once.
     */
    public static function isPlain(string $text): bool
    {
        $length = \strlen($text);
        if ($length % 4 !== 0) {
            return false;
        }
        for ($offset = 0; $offset < $length; $offset += self::SLICE) {
            $slice = \substr($text, $offset, self::SLICE);
            // Only the last slice may end in '=': in any other, one is a skipped byte.
            $padding = $offset + self::SLICE >= $length ? self::padding($slice) : 0;
            if (\strlen(\base64_decode($slice)) !== \intdiv(\strlen($slice), 4) * 3 - $padding) {
                return false;
            }
        }
        return true;
    }

    /** How many bytes text that isPlain() takes stands for. */
    public static function plainLength(string $text): int
    {
        return \intdiv(\strlen($text), 4) * 3 - self::padding($text);
    }

    /** How many '=' end $text, counting at most two (a third is a skipped byte). */
    private static function padding(string $text): int
    {
        $length = \strlen($text);
        if ($length === 0 || $text[$length - 1] !== '=') {
            return 0;
        }
        return $length > 1 && $text[$length - 2] === '=' ? 2 : 1;
    }
}
