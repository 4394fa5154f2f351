<?php

declare(strict_types=1);

namespace TrioS3Rpc;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\RpcError;
use TrioS3Rpc\Result\BucketInfo;
use TrioS3Rpc\Result\BucketList;
use TrioS3Rpc\Result\DeleteManyResult;
use TrioS3Rpc\Result\Listing;
use TrioS3Rpc\Result\Metadata;
use TrioS3Rpc\Result\ObjectEntry;
use TrioS3Rpc\Result\PublicUrl;
use TrioS3Rpc\Result\ReadFileResult;
use TrioS3Rpc\Result\ReadResult;
use TrioS3Rpc\Result\TransferStatus;
use TrioS3Rpc\Result\UploadForm;
use TrioS3Rpc\Result\UploadStatus;
use TrioS3Rpc\Result\UploadUrl;
use TrioS3Rpc\Result\WriteResult;

/**
 * What Client offers, for type hints and test doubles: mock this, not the final Client.
 * Every method throws RpcError (one subclass per error code) when the server answers an
 * error, and ConnectionFailed when the call or its answer was lost; see Client for each.
 */
interface ClientInterface
{
    /**
     * @throws RpcError|ConnectionFailed
     */
    public function bucket(string $bucket): BucketClient;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function withControl(?string $transferId = null, ?float $timeout = null): self;

    /**
     * @param array<string, mixed> $args
     *
     * @throws RpcError|ConnectionFailed
     */
    public function call(string $method, array $args = []): mixed;

    /**
     * @param array<string, mixed> $options
     *
     * @throws RpcError|ConnectionFailed
     */
    public function registerBucket(string $name, string $server, string $bucket, ?string $prefix = null, Visibility|string|null $visibility = null, array $options = []): string;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function listBuckets(): BucketList;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function bucketInfo(string $bucket = ''): BucketInfo;

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function write(string $bucket, string $pathname, string $content, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): WriteResult;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function read(string $bucket, string $pathname, ?int $offset = null, ?int $length = null, ?string $ifMatch = null): ReadResult;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function exists(string $bucket, string $pathname): bool;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function delete(string $bucket, string $pathname): void;

    /**
     * @param list<string> $pathnames
     *
     * @throws RpcError|ConnectionFailed
     */
    public function deleteMany(string $bucket, array $pathnames): DeleteManyResult;

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function copy(string $sourceBucket, string $sourcePathname, string $destBucket, string $destPathname, Visibility|string|null $visibility = null, array $metadata = [], array $headers = [], ?WriteOptions $options = null): WriteResult;

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function move(string $sourceBucket, string $sourcePathname, string $destBucket, string $destPathname, Visibility|string|null $visibility = null, array $metadata = [], array $headers = [], ?WriteOptions $options = null): WriteResult;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function getMetadata(string $bucket, string $pathname): Metadata;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function setVisibility(string $bucket, string $pathname, Visibility|string $visibility): void;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function getPublicUrl(string $bucket, string $pathname, int $expiresIn = 0, ?string $responseContentType = null, ?string $responseContentDisposition = null): PublicUrl;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function getUploadUrl(string $bucket, string $pathname, int $expiresIn = 3600, ?string $contentType = null): UploadUrl;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function getUploadForm(string $bucket, string $keyPrefix, int $maxSize, int $expiresIn = 3600, ?string $contentTypePrefix = null, int $minSize = 0): UploadForm;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function listObjects(string $bucket, ?string $prefix = null, ?string $delimiter = null, int $maxKeys = 1000, ?string $continuationToken = null): Listing;

    /**
     * @return \Generator<int, ObjectEntry, mixed, void>
     *
     * @throws RpcError|ConnectionFailed
     */
    public function listAll(string $bucket, ?string $prefix = null, int $pageSize = 1000): \Generator;

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function writeFile(string $bucket, string $pathname, string $sourcePath, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, bool $resume = false, array $headers = [], ?WriteOptions $options = null): WriteResult;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function readFile(string $bucket, string $pathname, string $destinationPath): ReadFileResult;

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function uploadStart(string $bucket, string $pathname, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): string;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function uploadChunk(string $uploadId, string $content, ?int $offset = null): int;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function uploadStatus(string $uploadId): UploadStatus;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function uploadFinish(string $uploadId, int $size): WriteResult;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function uploadAbort(string $uploadId): void;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function transferStatus(string $transferId): TransferStatus;

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function cancel(string $transferId): string;

    /**
     * @param resource|\Psr\Http\Message\StreamInterface $stream
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function writeStream(string $bucket, string $pathname, $stream, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): WriteResult;

    /**
     * @return resource
     *
     * @throws RpcError|ConnectionFailed
     */
    public function readStream(string $bucket, string $pathname);
}
