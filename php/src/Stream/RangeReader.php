<?php

declare(strict_types=1);

namespace TrioS3Rpc\Stream;

use TrioS3Rpc\Client;
use TrioS3Rpc\Exception\FileNotFound;

/**
 * Ranged s3.Reads of one object, one block held at a time. The first block is read at
 * construction, which gives the size and fails at once for a missing object. A later range
 * whose object has changed (another size or modification time) is refused rather than
 * mixing the bytes of two versions.
 */
final class RangeReader
{
    public readonly int $size;
    public readonly string $mimeType;
    public readonly int $lastModified;
    private int $blockOffset = 0;
    private string $block;

    public function __construct(
        private readonly Client $client,
        public readonly string $bucket,
        public readonly string $pathname,
        private readonly int $blockSize,
    ) {
        $first = $client->read($bucket, $pathname, 0, $blockSize);
        $this->size = $first->size;
        $this->mimeType = $first->mimeType;
        $this->lastModified = $first->lastModified;
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
        $range = $this->client->read($this->bucket, $this->pathname, $position, $this->blockSize);
        if ($range->size !== $this->size || $range->lastModified !== $this->lastModified) {
            throw new FileNotFound(
                'FILE_NOT_FOUND',
                'the object changed while it was being read',
                "pathname: {$this->pathname}, size {$this->size} -> {$range->size}",
            );
        }
        if ($range->content === '') {
            throw new \UnexpectedValueException("s3.Read answered no bytes at offset $position of {$this->size}");
        }
        $this->blockOffset = $position;
        $this->block = $range->content;
    }
}
