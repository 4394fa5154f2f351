<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** One page of s3.ListObjects: pass nextContinuationToken back for the next page. */
final class Listing
{
    /**
     * @param list<ObjectEntry> $objects
     * @param list<string>      $commonPrefixes the "directories" when a delimiter was given
     */
    public function __construct(
        public readonly array $objects,
        public readonly array $commonPrefixes,
        public readonly bool $isTruncated,
        public readonly int $keyCount,
        public readonly string $nextContinuationToken = '',
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            \array_map(static fn (array $o): ObjectEntry => ObjectEntry::fromArray($o), \array_values($a['objects'] ?? [])),
            \array_map(static fn (array $p): string => (string) $p['prefix'], \array_values($a['common_prefixes'] ?? [])),
            (bool) $a['is_truncated'],
            (int) ($a['key_count'] ?? 0),
            (string) ($a['next_continuation_token'] ?? ''),
        );
    }
}
