<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

use TrioS3Rpc\Client;

/** The answer of s3.GetMetadata; headers holds the standard object headers the object has. */
final class Metadata
{
    /** @param array<string, string> $headers cache_control, content_disposition, ... (see Client::HEADERS) */
    public function __construct(
        public readonly int $size,
        public readonly string $mimeType,
        public readonly int $lastModified,
        public readonly string $visibility,
        public readonly string $etag = '',
        public readonly string $checksum = '',
        public readonly array $headers = [],
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
        return new self(
            (int) $a['size'],
            (string) $a['mime_type'],
            (int) $a['last_modified'],
            (string) $a['visibility'],
            (string) ($a['etag'] ?? ''),
            (string) ($a['checksum'] ?? ''),
            $headers,
        );
    }
}
