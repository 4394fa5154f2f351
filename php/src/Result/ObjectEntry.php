<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** One object of an s3.ListObjects answer; key is relative to the bucket's prefix. */
final class ObjectEntry
{
    public function __construct(
        public readonly string $key,
        public readonly int $size,
        public readonly int $lastModified,
        public readonly string $etag = '',
        public readonly string $storageClass = '',
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (string) $a['key'],
            (int) $a['size'],
            (int) $a['last_modified'],
            (string) ($a['etag'] ?? ''),
            (string) ($a['storage_class'] ?? ''),
        );
    }

    /** lastModified as a date (UTC). */
    public function modifiedAt(): \DateTimeImmutable
    {
        return new \DateTimeImmutable('@' . $this->lastModified);
    }
}
