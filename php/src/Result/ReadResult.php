<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/**
 * The answer of s3.Read: the bytes (of the range asked for), the object's total size, and
 * the etag of the version they are of (pass it as read(ifMatch: ...) for the next range).
 */
final class ReadResult
{
    public function __construct(
        public readonly string $content,
        public readonly int $size,
        public readonly string $mimeType,
        public readonly int $lastModified,
        public readonly string $etag = '',
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (string) $a['content'],
            (int) $a['size'],
            (string) $a['mime_type'],
            (int) $a['last_modified'],
            (string) ($a['etag'] ?? ''),
        );
    }

    /** lastModified as a date (UTC). */
    public function modifiedAt(): \DateTimeImmutable
    {
        return new \DateTimeImmutable('@' . $this->lastModified);
    }
}
