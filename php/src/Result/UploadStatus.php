<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.UploadStatus: the bytes the storage service holds durably. */
final class UploadStatus
{
    public function __construct(
        public readonly int $committedBytes,
        public readonly int $parts,
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (int) $a['committed_bytes'],
            (int) $a['parts'],
        );
    }
}
