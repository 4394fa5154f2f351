<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

use TrioS3Rpc\Client;

/**
 * The answer of s3.GetMetadata: headers holds the standard object headers the object has,
 * metadata its user metadata (as a write's $metadata set it, names in lower case),
 * storageClass and sse how it is stored.
 */
final class Metadata
{
    /**
     * @param array<string, string> $headers  cache_control, content_disposition, ... (see Client::HEADERS)
     * @param array<string, string> $metadata user metadata
     */
    public function __construct(
        public readonly int $size,
        public readonly string $mimeType,
        public readonly int $lastModified,
        public readonly string $visibility,
        public readonly string $etag = '',
        public readonly string $checksum = '',
        public readonly array $headers = [],
        public readonly array $metadata = [],
        public readonly string $storageClass = '',
        public readonly string $sse = '',
        public readonly string $sseKmsKeyId = '',
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        $headers = [];
        foreach (Client::HEADERS as $name) {
            if (isset($a[$name]) && $a[$name] !== '') {
                $headers[$name] = (string) $a[$name];
            }
        }
        $metadata = [];
        foreach ((array) ($a['config'] ?? []) as $name => $value) {
            $metadata[(string) $name] = (string) $value;
        }
        return new self(
            (int) $a['size'],
            (string) $a['mime_type'],
            (int) $a['last_modified'],
            (string) $a['visibility'],
            (string) ($a['etag'] ?? ''),
            (string) ($a['checksum'] ?? ''),
            $headers,
            $metadata,
            (string) ($a['storage_class'] ?? ''),
            (string) ($a['sse'] ?? ''),
            (string) ($a['sse_kms_key_id'] ?? ''),
        );
    }

    /** lastModified as a date (UTC). */
    public function modifiedAt(): \DateTimeImmutable
    {
        return new \DateTimeImmutable('@' . $this->lastModified);
    }
}
