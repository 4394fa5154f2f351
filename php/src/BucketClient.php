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
 * A Client bound to one bucket: $client->bucket('uploads')->write('a.txt', 'hi'). Every
 * method is the Client's of the same name without its bucket argument.
 */
final class BucketClient
{
    public function __construct(private readonly Client $client, public readonly string $bucket)
    {
    }

    public function client(): Client
    {
        return $this->client;
    }

    /** @throws RpcError|ConnectionFailed */
    public function info(): BucketInfo
    {
        return $this->client->bucketInfo($this->bucket);
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function write(string $pathname, string $content, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): WriteResult
    {
        return $this->client->write($this->bucket, $pathname, $content, $visibility, $metadata, $contentType, $headers, $options);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function read(string $pathname, ?int $offset = null, ?int $length = null, ?string $ifMatch = null): ReadResult
    {
        return $this->client->read($this->bucket, $pathname, $offset, $length, $ifMatch);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function exists(string $pathname): bool
    {
        return $this->client->exists($this->bucket, $pathname);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function delete(string $pathname): void
    {
        $this->client->delete($this->bucket, $pathname);
    }

    /**
     * @param list<string> $pathnames
     *
     * @throws RpcError|ConnectionFailed
     */
    public function deleteMany(array $pathnames): DeleteManyResult
    {
        return $this->client->deleteMany($this->bucket, $pathnames);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function getMetadata(string $pathname): Metadata
    {
        return $this->client->getMetadata($this->bucket, $pathname);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function setVisibility(string $pathname, Visibility|string $visibility): void
    {
        $this->client->setVisibility($this->bucket, $pathname, $visibility);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function getPublicUrl(string $pathname, int $expiresIn = 0, ?string $responseContentType = null, ?string $responseContentDisposition = null): PublicUrl
    {
        return $this->client->getPublicUrl($this->bucket, $pathname, $expiresIn, $responseContentType, $responseContentDisposition);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function getUploadUrl(string $pathname, int $expiresIn = 3600, ?string $contentType = null): UploadUrl
    {
        return $this->client->getUploadUrl($this->bucket, $pathname, $expiresIn, $contentType);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function getUploadForm(string $keyPrefix, int $maxSize, int $expiresIn = 3600, ?string $contentTypePrefix = null, int $minSize = 0): UploadForm
    {
        return $this->client->getUploadForm($this->bucket, $keyPrefix, $maxSize, $expiresIn, $contentTypePrefix, $minSize);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function listObjects(?string $prefix = null, ?string $delimiter = null, int $maxKeys = 1000, ?string $continuationToken = null): Listing
    {
        return $this->client->listObjects($this->bucket, $prefix, $delimiter, $maxKeys, $continuationToken);
    }

    /**
     * @return \Generator<int, ObjectEntry, mixed, void>
     *
     * @throws RpcError|ConnectionFailed
     */
    public function listAll(?string $prefix = null, int $pageSize = 1000): \Generator
    {
        return $this->client->listAll($this->bucket, $prefix, $pageSize);
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function writeFile(string $pathname, string $sourcePath, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, bool $resume = false, array $headers = [], ?WriteOptions $options = null): WriteResult
    {
        return $this->client->writeFile($this->bucket, $pathname, $sourcePath, $visibility, $metadata, $contentType, $resume, $headers, $options);
    }

    /**
     * @throws RpcError|ConnectionFailed
     */
    public function readFile(string $pathname, string $destinationPath): ReadFileResult
    {
        return $this->client->readFile($this->bucket, $pathname, $destinationPath);
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function uploadStart(string $pathname, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): string
    {
        return $this->client->uploadStart($this->bucket, $pathname, $visibility, $metadata, $contentType, $headers, $options);
    }

    /**
     * @param resource|\Psr\Http\Message\StreamInterface $stream
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed
     */
    public function writeStream(string $pathname, $stream, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): WriteResult
    {
        return $this->client->writeStream($this->bucket, $pathname, $stream, $visibility, $metadata, $contentType, $headers, $options);
    }

    /**
     * @return resource
     *
     * @throws RpcError|ConnectionFailed
     */
    public function readStream(string $pathname)
    {
        return $this->client->readStream($this->bucket, $pathname);
    }
}
