<?php

declare(strict_types=1);

namespace TrioS3Rpc\Stream;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Transport\Base64;

/**
 * One range of an object as s3.Read answered it, held in the form it travelled in: the
 * bytes (msgpack), or their base64 text (JSON), decoded a piece at a time as the stream is
 * read, so that a range is never held both as text and as bytes. The text is checked once,
 * when the block is made (Base64::isPlain, a slice at a time); text the check does not take
 * is decoded whole as strict base64_decode would (or refused), so the bytes are the same.
 */
final class Block
{
    /** How many bytes the block holds. */
    public readonly int $length;

    private function __construct(private readonly string $wire, private readonly bool $base64)
    {
        $this->length = $base64 ? Base64::plainLength($wire) : \strlen($wire);
    }

    /**
     * @param string $wire   the answer's content as it came
     * @param bool   $base64 whether it is base64 text (the transport's bytesAsBase64())
     *
     * @throws ConnectionFailed the content is not base64
     */
    public static function of(string $wire, bool $base64): self
    {
        if (!$base64 || Base64::isPlain($wire)) {
            return new self($wire, $base64);
        }
        $bytes = Base64::decode($wire);
        if ($bytes === false) {
            throw new ConnectionFailed('the server answered content that is not base64');
        }
        return new self($bytes, false);
    }

    /** Up to $length bytes from $offset in the block ('' at or past its end). */
    public function bytesAt(int $offset, int $length): string
    {
        $length = \min($length, $this->length - $offset);
        if ($offset < 0 || $length <= 0) {
            return '';
        }
        if (!$this->base64) {
            return \substr($this->wire, $offset, $length);
        }
        // The groups of 3 bytes (4 characters) that hold the bytes asked for.
        $first = \intdiv($offset, 3);
        $end = \intdiv($offset + $length + 2, 3);
        $bytes = \base64_decode(\substr($this->wire, $first * 4, ($end - $first) * 4));
        $skip = $offset - $first * 3;
        return $skip === 0 && \strlen($bytes) === $length ? $bytes : \substr($bytes, $skip, $length);
    }
}
