<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** The answer of s3.DeleteMany: each pathname is either deleted or has an error of its own. */
final class DeleteManyResult
{
    /**
     * @param list<string>      $deleted
     * @param list<DeleteError> $errors
     */
    public function __construct(public readonly array $deleted, public readonly array $errors)
    {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            \array_map('strval', \array_values($a['deleted'] ?? [])),
            \array_map(static fn (array $e): DeleteError => DeleteError::fromArray($e), \array_values($a['errors'] ?? [])),
        );
    }
}
