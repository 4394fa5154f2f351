<?php

declare(strict_types=1);

namespace TrioS3Rpc\Stream;

use TrioS3Rpc\Client;
use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\ObjectChanged;
use TrioS3Rpc\Result\ReadResult;

/**
 * Ranged s3.Reads of one version of one object, one block held at a time, in the form it
 * travelled in (Block: under JSON its base64 text, decoded as it is read). The first block
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
    private Block $block;

    public function __construct(
        private readonly Client $client,
        public readonly string $bucket,
        public readonly string $pathname,
        private readonly int $blockSize,
    ) {
        [$first, $this->block] = $this->resumed(fn () => $this->range(0, null));
        $this->size = $first->size;
        $this->mimeType = $first->mimeType;
        $this->lastModified = $first->lastModified;
        $this->etag = $first->etag;
    }

    /** Up to $length bytes at $position ('' at or past the end). */
    public function bytesAt(int $position, int $length): string
    {
        if ($position >= $this->size || $length <= 0) {
            return '';
        }
        $inBlock = $position - $this->blockOffset;
        if ($inBlock < 0 || $inBlock >= $this->block->length) {
            $this->fetch($position);
            $inBlock = 0;
        }
        return $this->block->bytesAt($inBlock, $length);
    }

    private function fetch(int $position): void
    {
        $this->block = Block::of('', false);  // release the old block before the new one arrives
        $ifMatch = $this->etag !== '' ? $this->etag : null;
        [$range, $block] = $this->resumed(fn () => $this->range($position, $ifMatch));
        if ($range->etag !== $this->etag || $range->size !== $this->size) {
            throw new ObjectChanged(
                'OBJECT_CHANGED',
                'the object was replaced while it was being read',
                "pathname: {$this->pathname}, etag {$this->etag} -> {$range->etag}, size {$this->size} -> {$range->size}",
            );
        }
        if ($block->length === 0) {
            throw new \UnexpectedValueException("s3.Read answered no bytes at offset $position of {$this->size}");
        }
        $this->blockOffset = $position;
        $this->block = $block;
    }

    /**
     * s3.Read of the block at $position, as Client::read() asks it, with its content left
     * in its wire form.
     *
     * @return array{ReadResult, Block} the answer (its content not decoded: '') and the block
     *
     * @throws ConnectionFailed the content is not base64, or the connection broke
     */
    private function range(int $position, ?string $ifMatch): array
    {
        $args = ['bucket' => $this->bucket, 'pathname' => $this->pathname, 'offset' => $position, 'length' => $this->blockSize];
        if ($ifMatch !== null) {
            $args['if_match'] = $ifMatch;
        }
        $answer = $this->client->call('s3.Read', $args);
        $block = Block::of((string) ($answer['content'] ?? ''), $this->client->transport()->bytesAsBase64());
        $answer['content'] = '';
        return [ReadResult::fromArray($answer), $block];
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
