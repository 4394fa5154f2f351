<?php

declare(strict_types=1);

namespace TrioS3Rpc\Result;

/** A pathname that s3.DeleteMany could not delete, with its error code. */
final class DeleteError
{
    public function __construct(
        public readonly string $pathname,
        public readonly string $code,
        public readonly string $message,
    ) {
    }

    /** @param array<string, mixed> $a the decoded answer */
    public static function fromArray(array $a): self
    {
        return new self(
            (string) $a['pathname'],
            (string) $a['code'],
            (string) $a['message'],
        );
    }
}
