<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.GetUploadURL: PUT the body to url with exactly these headers before expiresAt. */
final class UploadUrl
{
    /** @param array<string, string> $headers */
    public function __construct(
        public readonly string $url,
        public readonly array $headers,
        public readonly int $expiresAt,
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self((string) $a['url'], \array_map('strval', (array) ($a['headers'] ?? [])), (int) $a['expires_at']);
    }

    /** expiresAt as a date (UTC). */
    public function expiry(): \DateTimeImmutable
    {
        return new \DateTimeImmutable('@' . $this->expiresAt);
    }
}
