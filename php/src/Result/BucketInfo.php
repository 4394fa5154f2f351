<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.GetBucketInfo: how the server writes to one of its buckets. */
final class BucketInfo
{
    /**
     * @param string $visibilityMode acl (per-object ACLs) or none (every object has $visibility)
     * @param string $visibility     the bucket's default visibility: public or private
     */
    public function __construct(
        public readonly string $name,
        public readonly string $visibilityMode,
        public readonly string $visibility,
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self((string) $a['name'], (string) $a['visibility_mode'], (string) $a['visibility']);
    }

    public function keepsObjectAcls(): bool
    {
        return $this->visibilityMode !== 'none';
    }
}
