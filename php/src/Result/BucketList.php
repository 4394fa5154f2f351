<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.ListBuckets. */
final class BucketList
{
    public function __construct(
        public readonly array $buckets,
        public readonly string $default = '',
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (array) $a['buckets'],
            (string) ($a['default'] ?? ''),
        );
    }
}
