<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.TransferStatus. */
final class TransferStatus
{
    public function __construct(
        public readonly string $state,
        public readonly int $bytesDone = 0,
        public readonly int $bytesTotal = 0,
        public readonly int $partsDone = 0,
        public readonly int $partsTotal = 0,
        public readonly int $startedAt = 0,
        public readonly string $method = '',
        public readonly int $finishedAt = 0,
    ) {
    }

    /** The state as an enum; null for a state this version does not know. */
    public function transferState(): ?\TrioS3Rpc\TransferState
    {
        return \TrioS3Rpc\TransferState::tryFrom($this->state);
    }

    public function startedAtDate(): ?\DateTimeImmutable
    {
        return $this->startedAt > 0 ? new \DateTimeImmutable('@' . $this->startedAt) : null;
    }

    public function finishedAtDate(): ?\DateTimeImmutable
    {
        return $this->finishedAt > 0 ? new \DateTimeImmutable('@' . $this->finishedAt) : null;
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (string) $a['state'],
            (int) ($a['bytes_done'] ?? 0),
            (int) ($a['bytes_total'] ?? 0),
            (int) ($a['parts_done'] ?? 0),
            (int) ($a['parts_total'] ?? 0),
            (int) ($a['started_at'] ?? 0),
            (string) ($a['method'] ?? ''),
            (int) ($a['finished_at'] ?? 0),
        );
    }
}
