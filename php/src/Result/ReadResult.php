<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.Read: the bytes (of the range asked for) and the object's total size. */
final class ReadResult
{
    public function __construct(
        public readonly string $content,
        public readonly int $size,
        public readonly string $mimeType,
        public readonly int $lastModified,
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
        );
    }
}
