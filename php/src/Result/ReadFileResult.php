<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.ReadFile. */
final class ReadFileResult
{
    public function __construct(
        public readonly int $size,
        public readonly string $mimeType,
        public readonly int $lastModified,
        public readonly string $checksum = '',
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (int) $a['size'],
            (string) $a['mime_type'],
            (int) $a['last_modified'],
            (string) ($a['checksum'] ?? ''),
        );
    }
}
