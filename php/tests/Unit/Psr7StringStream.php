<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use Psr\Http\Message\StreamInterface;

/**
 * A minimal PSR-7 stream over a string (psr/http-message 1.0's signatures, as Debian
 * packages it), read in pieces of at most $piece bytes, as a request body would be.
 */
final class Psr7StringStream implements StreamInterface
{
    private int $position = 0;
    public int $reads = 0;

    public function __construct(private readonly string $bytes, private readonly int $piece = 65536)
    {
    }

    public function __toString()
    {
        return $this->bytes;
    }

    public function close()
    {
    }

    public function detach()
    {
        return null;
    }

    public function getSize()
    {
        return \strlen($this->bytes);
    }

    public function tell()
    {
        return $this->position;
    }

    public function eof()
    {
        return $this->position >= \strlen($this->bytes);
    }

    public function isSeekable()
    {
        return false;
    }

    public function seek($offset, $whence = \SEEK_SET)
    {
        throw new \RuntimeException('not seekable');
    }

    public function rewind()
    {
        throw new \RuntimeException('not seekable');
    }

    public function isWritable()
    {
        return false;
    }

    public function write($string)
    {
        throw new \RuntimeException('not writable');
    }

    public function isReadable()
    {
        return true;
    }

    public function read($length)
    {
        $this->reads++;
        $piece = \substr($this->bytes, $this->position, \min($length, $this->piece));
        $this->position += \strlen($piece);
        return $piece;
    }

    public function getContents()
    {
        return $this->read(\PHP_INT_MAX);
    }

    public function getMetadata($key = null)
    {
        return $key === null ? [] : null;
    }
}
