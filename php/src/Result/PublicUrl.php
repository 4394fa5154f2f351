<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.GetPublicURL: expiresAt is 0 for a permanent URL. */
final class PublicUrl
{
    public function __construct(
        public readonly string $url,
        public readonly int $expiresAt = 0,
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (string) $a['url'],
            (int) ($a['expires_at'] ?? 0),
        );
    }
}
