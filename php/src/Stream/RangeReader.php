<?php

declare(strict_types=1);

namespace TrioS3Rpc\Stream;

use TrioS3Rpc\Client;
use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\ObjectChanged;

/**
 * Ranged s3.Reads of one version of one object, one block held at a time. The first block
 * is read at construction, which gives the size and the ETag and fails at once for a
 * missing object. Every later range is asked with if_match on that ETag, so the server
 * answers OBJECT_CHANGED (ObjectChanged) for a replaced object; an answer of another ETag
 * (a server that does not know if_match) is refused the same way. A broken connection is
 * resumed: the same range, same ETag, on a new connection, as the client's resume settings
 * allow.
 */
final class RangeReader
{
    public readonly int $size;
    public readonly string $mimeType;
    public readonly int $lastModified;
    public readonly string $etag;
    private int $blockOffset = 0;
    private string $block;

    public function __construct(
        private readonly Client $client,
        public readonly string $bucket,
        public readonly string $pathname,
        private readonly int $blockSize,
    ) {
        $first = $this->resumed(fn () => $client->read($bucket, $pathname, 0, $blockSize));
        $this->size = $first->size;
        $this->mimeType = $first->mimeType;
        $this->lastModified = $first->lastModified;
        $this->etag = $first->etag;
        $this->block = $first->content;
    }

    /** Up to $length bytes at $position ('' at or past the end). */
    public function bytesAt(int $position, int $length): string
    {
        if ($position >= $this->size || $length <= 0) {
            return '';
        }
        $inBlock = $position - $this->blockOffset;
        if ($inBlock < 0 || $inBlock >= \strlen($this->block)) {
            $this->fetch($position);
            $inBlock = 0;
        }
        return \substr($this->block, $inBlock, $length);
    }

    private function fetch(int $position): void
    {
        $this->block = '';  // release the old block before the new one arrives
        $ifMatch = $this->etag !== '' ? $this->etag : null;
        $range = $this->resumed(fn () => $this->client->read($this->bucket, $this->pathname, $position, $this->blockSize, $ifMatch));
        if ($range->etag !== $this->etag || $range->size !== $this->size) {
            throw new ObjectChanged(
                'OBJECT_CHANGED',
                'the object was replaced while it was being read',
                "pathname: {$this->pathname}, etag {$this->etag} -> {$range->etag}, size {$this->size} -> {$range->size}",
            );
        }
        if ($range->content === '') {
            throw new \UnexpectedValueException("s3.Read answered no bytes at offset $position of {$this->size}");
        }
        $this->blockOffset = $position;
        $this->block = $range->content;
    }

    /**
     * @template T
     * @param callable(): T $read
     * @return T
     */
    private function resumed(callable $read): mixed
    {
        $failures = 0;
        while (true) {
            try {
                return $read();
            } catch (ConnectionFailed $broken) {
                if (++$failures > $this->client->options()->resumeAttempts) {
                    throw $broken;
                }
                $this->client->pauseBeforeResume($failures);
            }
        }
    }
}
