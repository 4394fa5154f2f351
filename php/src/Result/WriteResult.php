<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.Write, s3.WriteFile, s3.Copy, s3.Move and s3.UploadFinish. */
final class WriteResult
{
    public function __construct(
        public readonly string $pathname,
        public readonly int $size,
        public readonly int $lastModified,
        public readonly string $checksum = '',
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (string) $a['pathname'],
            (int) $a['size'],
            (int) $a['last_modified'],
            (string) ($a['checksum'] ?? ''),
        );
    }

    /** lastModified as a date (UTC). */
    public function modifiedAt(): \DateTimeImmutable
    {
        return new \DateTimeImmutable('@' . $this->lastModified);
    }
}
