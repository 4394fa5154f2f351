<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/**
 * The answer of s3.GetUploadForm: an HTML form (or multipart POST) to url with these fields,
 * then a Content-Type field and the file last. The key field ends with S3's ${filename}.
 */
final class UploadForm
{
    /** @param array<string, string> $fields */
    public function __construct(
        public readonly string $url,
        public readonly array $fields,
        public readonly int $expiresAt,
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self((string) $a['url'], \array_map('strval', (array) ($a['fields'] ?? [])), (int) $a['expires_at']);
    }
}
