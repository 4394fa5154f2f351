<?php

declare(strict_types=1);

namespace TrioS3Rpc;

/**
 * How a new object is stored: storage class and server-side encryption (null: the bucket's
 * default, as the server's bucket settings of the same names say). The server checks the
 * values (INVALID_REQUEST naming the field) before any request reaches the service.
 */
final class WriteOptions
{
    /**
     * @param string|null $storageClass one of S3's: STANDARD, STANDARD_IA, GLACIER_IR, ...
     * @param string|null $sse          AES256 or aws:kms
     * @param string|null $sseKmsKeyId  the KMS key of aws:kms
     */
    public function __construct(
        public readonly ?string $storageClass = null,
        public readonly ?string $sse = null,
        public readonly ?string $sseKmsKeyId = null,
    ) {
    }

    /** @return array<string, string> the request fields */
    public function toArgs(): array
    {
        return \array_filter(
            ['storage_class' => $this->storageClass, 'sse' => $this->sse, 'sse_kms_key_id' => $this->sseKmsKeyId],
            static fn (?string $v): bool => $v !== null && $v !== '',
        );
    }
}
