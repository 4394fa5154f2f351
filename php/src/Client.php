<?php

declare(strict_types=1);

namespace TrioS3Rpc;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\RpcError;
use TrioS3Rpc\Exception\UploadNotFound;
use TrioS3Rpc\Result\BucketList;
use TrioS3Rpc\Result\DeleteManyResult;
use TrioS3Rpc\Result\Listing;
use TrioS3Rpc\Result\Metadata;
use TrioS3Rpc\Result\PublicUrl;
use TrioS3Rpc\Result\ReadFileResult;
use TrioS3Rpc\Result\ReadResult;
use TrioS3Rpc\Result\TransferStatus;
use TrioS3Rpc\Result\UploadForm;
use TrioS3Rpc\Result\UploadStatus;
use TrioS3Rpc\Result\UploadUrl;
use TrioS3Rpc\Result\WriteResult;
use TrioS3Rpc\Stream\ObjectStream;
use TrioS3Rpc\Stream\RangeReader;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\ExternalRpc;
use TrioS3Rpc\Transport\GoridgeTransport;
use TrioS3Rpc\Transport\Transport;

/**
 * The typed client: one method per s3.* method of the server, answers as readonly value
 * objects, errors as one RpcError subclass per code, and streams of any size in bounded
 * memory (writeStream, readStream).
 *
 * An empty $bucket means the server's default bucket. $headers are the standard object
 * headers: cache_control, content_disposition, content_encoding, content_language, expires.
 */
final class Client
{
    /** The object headers a write may set, and GetMetadata answers. */
    public const HEADERS = ['cache_control', 'content_disposition', 'content_encoding', 'content_language', 'expires'];

    private readonly Transport $transport;
    /** @var array<string, mixed> transfer_id and timeout, added to every call */
    private array $control = [];

    /**
     * @param Transport|object $rpc a Transport, or any object with call(string $method, mixed $payload),
     *                              such as Spiral\Goridge\RPC\RPC (JSON codec assumed; wrap it in
     *                              ExternalRpc($rpc, bytesAsBase64: false) for msgpack)
     * @param int $chunkSize bytes per UploadChunk and per ranged Read of the streams
     */
    public function __construct(
        object $rpc,
        private readonly int $chunkSize = 4 << 20,
        private readonly int $resumeAttempts = 5,
        private readonly int $resumeDelayMs = 200,
    ) {
        $this->transport = $rpc instanceof Transport ? $rpc : new ExternalRpc($rpc);
        if ($chunkSize < 1) {
            throw new \InvalidArgumentException("chunkSize must be positive, got $chunkSize");
        }
    }

    /** A client on its own connection: tcp://host:port or unix:///path, JSON or msgpack. */
    public static function connect(string $address, ?Codec $codec = null, float $readTimeout = 600.0): self
    {
        return new self(new GoridgeTransport($address, $codec ?? Codec::Json, readTimeout: $readTimeout));
    }

    public function transport(): Transport
    {
        return $this->transport;
    }

    /**
     * A client whose calls carry a transfer_id (for transferStatus and cancel) and/or a
     * timeout in seconds (past it the call answers OPERATION_TIMEOUT).
     */
    public function withControl(?string $transferId = null, ?float $timeout = null): self
    {
        $clone = clone $this;
        $clone->control = \array_filter(['transfer_id' => $transferId, 'timeout' => $timeout], static fn ($v) => $v !== null);
        return $clone;
    }

    /**
     * The raw call, for methods of a newer server: the argument and answer as arrays.
     *
     * @param array<string, mixed> $args
     */
    public function call(string $method, array $args = []): mixed
    {
        $args += $this->control;
        return $this->transport->call($method, $args === [] ? [] : $args);
    }

    // -- buckets ------------------------------------------------------------

    /** @param array<string, mixed> $options max_concurrent_operations, part_size, concurrency, public_url, visibility_mode */
    public function registerBucket(string $name, string $server, string $bucket, string $prefix = '', string $visibility = '', array $options = []): string
    {
        $answer = $this->call('s3.RegisterBucket', self::compact([
            'name' => $name, 'server' => $server, 'bucket' => $bucket, 'prefix' => $prefix, 'visibility' => $visibility,
        ] + $options));
        return (string) $answer['message'];
    }

    public function listBuckets(): BucketList
    {
        return BucketList::fromArray($this->call('s3.ListBuckets'));
    }

    // -- objects ------------------------------------------------------------

    /**
     * @param array<string, string> $metadata user metadata (x-amz-meta-*)
     * @param array<string, string> $headers  see HEADERS
     */
    public function write(string $bucket, string $pathname, string $content, string $visibility = '', array $metadata = [], string $contentType = '', array $headers = []): WriteResult
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'visibility' => $visibility, 'content_type' => $contentType])
            + $this->objectOptions($metadata, $headers);
        $args['content'] = $this->bytesOut($content);
        return WriteResult::fromArray($this->call('s3.Write', $args));
    }

    /** The whole object, or with $offset/$length a range of it (size is always the whole size). */
    public function read(string $bucket, string $pathname, ?int $offset = null, ?int $length = null): ReadResult
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname]);
        if ($offset !== null) {
            $args['offset'] = $offset;
        }
        if ($length !== null) {
            $args['length'] = $length;
        }
        $answer = $this->call('s3.Read', $args);
        $answer['content'] = $this->bytesIn($answer['content'] ?? '');
        return ReadResult::fromArray($answer);
    }

    public function exists(string $bucket, string $pathname): bool
    {
        return (bool) $this->call('s3.Exists', self::compact(['bucket' => $bucket, 'pathname' => $pathname]))['exists'];
    }

    /** Deleting a key that does not exist succeeds, as in S3. */
    public function delete(string $bucket, string $pathname): void
    {
        $this->call('s3.Delete', self::compact(['bucket' => $bucket, 'pathname' => $pathname]));
    }

    /** @param list<string> $pathnames */
    public function deleteMany(string $bucket, array $pathnames): DeleteManyResult
    {
        $args = self::compact(['bucket' => $bucket]) + ['pathnames' => \array_values($pathnames)];
        return DeleteManyResult::fromArray($this->call('s3.DeleteMany', $args));
    }

    /**
     * A Copy onto itself succeeds and changes nothing.
     *
     * @param array<string, string> $metadata replaces the user metadata when given
     * @param array<string, string> $headers  see HEADERS
     */
    public function copy(string $sourceBucket, string $sourcePathname, string $destBucket, string $destPathname, string $visibility = '', array $metadata = [], array $headers = []): WriteResult
    {
        return WriteResult::fromArray($this->call('s3.Copy', $this->copyArgs(...\func_get_args())));
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string> $headers
     */
    public function move(string $sourceBucket, string $sourcePathname, string $destBucket, string $destPathname, string $visibility = '', array $metadata = [], array $headers = []): WriteResult
    {
        return WriteResult::fromArray($this->call('s3.Move', $this->copyArgs(...\func_get_args())));
    }

    public function getMetadata(string $bucket, string $pathname): Metadata
    {
        return Metadata::fromArray($this->call('s3.GetMetadata', self::compact(['bucket' => $bucket, 'pathname' => $pathname])));
    }

    public function setVisibility(string $bucket, string $pathname, string $visibility): void
    {
        $this->call('s3.SetVisibility', self::compact(['bucket' => $bucket, 'pathname' => $pathname]) + ['visibility' => $visibility]);
    }

    /**
     * A permanent URL ($expiresIn 0) or a presigned GET valid $expiresIn seconds (at most 7 days).
     * $responseContentType and $responseContentDisposition make the download answer those headers
     * (presigned URLs only), e.g. 'attachment; filename="report.pdf"'.
     */
    public function getPublicUrl(string $bucket, string $pathname, int $expiresIn = 0, string $responseContentType = '', string $responseContentDisposition = ''): PublicUrl
    {
        $args = self::compact([
            'bucket' => $bucket, 'pathname' => $pathname,
            'response_content_type' => $responseContentType, 'response_content_disposition' => $responseContentDisposition,
        ]);
        if ($expiresIn !== 0) {
            $args['expires_in'] = $expiresIn;
        }
        return PublicUrl::fromArray($this->call('s3.GetPublicURL', $args));
    }

    /** A presigned PUT: send the body to url with exactly the answered headers before expiresAt. */
    public function getUploadUrl(string $bucket, string $pathname, int $expiresIn = 3600, string $contentType = ''): UploadUrl
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'content_type' => $contentType]);
        $args['expires_in'] = $expiresIn;
        return UploadUrl::fromArray($this->call('s3.GetUploadURL', $args));
    }

    /**
     * A presigned POST policy for browser uploads: keys under $keyPrefix, at most $maxSize bytes,
     * and a Content-Type starting with $contentTypePrefix (empty: any).
     */
    public function getUploadForm(string $bucket, string $keyPrefix, int $maxSize, int $expiresIn = 3600, string $contentTypePrefix = '', int $minSize = 0): UploadForm
    {
        $args = self::compact(['bucket' => $bucket, 'content_type_prefix' => $contentTypePrefix]);
        $args += ['key_prefix' => $keyPrefix, 'max_size' => $maxSize, 'min_size' => $minSize, 'expires_in' => $expiresIn];
        return UploadForm::fromArray($this->call('s3.GetUploadForm', $args));
    }

    /** One page; pass $listing->nextContinuationToken for the next while isTruncated. */
    public function listObjects(string $bucket, string $prefix = '', string $delimiter = '', int $maxKeys = 1000, string $continuationToken = ''): Listing
    {
        $args = self::compact([
            'bucket' => $bucket, 'prefix' => $prefix, 'delimiter' => $delimiter, 'continuation_token' => $continuationToken,
        ]);
        $args['max_keys'] = $maxKeys;
        return Listing::fromArray($this->call('s3.ListObjects', $args));
    }

    // -- files and chunked uploads -------------------------------------------

    /**
     * Upload a local file the server can read (under its s3.local_roots).
     *
     * @param array<string, string> $metadata
     * @param array<string, string> $headers
     */
    public function writeFile(string $bucket, string $pathname, string $sourcePath, string $visibility = '', array $metadata = [], string $contentType = '', bool $resume = false, array $headers = []): WriteResult
    {
        $args = self::compact([
            'bucket' => $bucket, 'pathname' => $pathname, 'source_path' => $sourcePath,
            'visibility' => $visibility, 'content_type' => $contentType,
        ]) + $this->objectOptions($metadata, $headers);
        if ($resume) {
            $args['resume'] = true;
        }
        return WriteResult::fromArray($this->call('s3.WriteFile', $args));
    }

    public function readFile(string $bucket, string $pathname, string $destinationPath): ReadFileResult
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'destination_path' => $destinationPath]);
        return ReadFileResult::fromArray($this->call('s3.ReadFile', $args));
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string> $headers
     * @return string the upload id, a token any server instance with the same configuration accepts
     */
    public function uploadStart(string $bucket, string $pathname, string $visibility = '', array $metadata = [], string $contentType = '', array $headers = []): string
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'visibility' => $visibility, 'content_type' => $contentType])
            + $this->objectOptions($metadata, $headers);
        return (string) $this->call('s3.UploadStart', $args)['upload_id'];
    }

    /** @return int the bytes received so far */
    public function uploadChunk(string $uploadId, string $content, ?int $offset = null): int
    {
        $args = ['upload_id' => $uploadId, 'content' => $this->bytesOut($content)];
        unset($content);
        if ($offset !== null) {
            $args['offset'] = $offset;
        }
        return (int) $this->call('s3.UploadChunk', $args)['size'];
    }

    public function uploadStatus(string $uploadId): UploadStatus
    {
        return UploadStatus::fromArray($this->call('s3.UploadStatus', ['upload_id' => $uploadId]));
    }

    /** @param int $size the total bytes sent: the server completes only with every one of them */
    public function uploadFinish(string $uploadId, int $size): WriteResult
    {
        return WriteResult::fromArray(
            $this->call('s3.UploadFinish', ['upload_id' => $uploadId, 'size' => $size])
        );
    }

    public function uploadAbort(string $uploadId): void
    {
        $this->call('s3.UploadAbort', ['upload_id' => $uploadId]);
    }

    public function transferStatus(string $transferId): TransferStatus
    {
        return TransferStatus::fromArray($this->call('s3.TransferStatus', ['transfer_id' => $transferId]));
    }

    /** @return string the transfer's state after the request */
    public function cancel(string $transferId): string
    {
        return (string) $this->call('s3.Cancel', ['transfer_id' => $transferId])['state'];
    }

    // -- streams ------------------------------------------------------------

    /**
     * Upload everything $stream yields from its current position, in bounded memory: one
     * s3.Write when it fits in one chunk, else a chunked upload. After a broken connection the
     * upload resumes from s3.UploadStatus on a new connection (the stream must be seekable for
     * that); any other failure aborts the upload, so nothing half-written is left.
     *
     * @param resource              $stream
     * @param array<string, string> $metadata
     * @param array<string, string> $headers
     */
    public function writeStream(string $bucket, string $pathname, $stream, string $visibility = '', array $metadata = [], string $contentType = '', array $headers = []): WriteResult
    {
        if (!\is_resource($stream)) {
            throw new \InvalidArgumentException('writeStream needs an open stream resource');
        }
        $seekable = (bool) \stream_get_meta_data($stream)['seekable'];
        $start = $seekable ? (int) \ftell($stream) : 0;
        $chunk = self::readChunk($stream, $this->chunkSize);
        if (\feof($stream) && \strlen($chunk) < $this->chunkSize) {
            return $this->write($bucket, $pathname, $chunk, $visibility, $metadata, $contentType, $headers);
        }
        $uploadId = $this->uploadStart($bucket, $pathname, $visibility, $metadata, $contentType, $headers);
        try {
            $offset = 0;
            $failures = 0;
            while ($chunk !== '') {
                try {
                    $received = $this->uploadChunk($uploadId, $chunk, $offset);
                    $failures = 0;
                    $offset += \strlen($chunk);
                    if ($received !== $offset) {
                        // A resent range the server had already received (its answer was lost
                        // with the connection): continue from where the server is.
                        if ($received < $offset || !$seekable || \fseek($stream, $start + $received) !== 0) {
                            throw new \UnexpectedValueException("the server holds $received bytes of the upload, $offset were sent");
                        }
                        $offset = $received;
                    }
                } catch (ConnectionFailed $broken) {
                    if (!$seekable || ++$failures > $this->resumeAttempts) {
                        throw $broken;
                    }
                    $offset = $this->resumePoint($uploadId, $failures);
                    if (\fseek($stream, $start + $offset) !== 0) {
                        throw $broken;
                    }
                }
                $chunk = self::readChunk($stream, $this->chunkSize);
            }
            return $this->finishUpload($uploadId, $bucket, $pathname, $offset);
        } catch (\Throwable $e) {
            try {
                $this->uploadAbort($uploadId);
            } catch (\Throwable) {
                // The server aborts an idle upload after s3.upload_idle_timeout anyway.
            }
            throw $e;
        }
    }

    /**
     * A readable, seekable stream of the object that fetches ranged s3.Reads of chunkSize bytes
     * as it is read: memory stays at about one chunk whatever the object's size. The first
     * range is read now, so a missing object fails here (FileNotFound), not at the first fread.
     *
     * @return resource
     */
    public function readStream(string $bucket, string $pathname)
    {
        return ObjectStream::open(new RangeReader($this, $bucket, $pathname, $this->chunkSize));
    }

    // -- internals ----------------------------------------------------------

    private function resumePoint(string $uploadId, int $failures): int
    {
        while (true) {
            \usleep($this->resumeDelayMs * 1000 * $failures);
            $this->transport->reset();
            try {
                return $this->uploadStatus($uploadId)->committedBytes;
            } catch (ConnectionFailed $e) {
                if (++$failures > $this->resumeAttempts) {
                    throw $e;
                }
            }
        }
    }

    private function finishUpload(string $uploadId, string $bucket, string $pathname, int $size): WriteResult
    {
        try {
            return $this->uploadFinish($uploadId, $size);
        } catch (ConnectionFailed $broken) {
            \usleep($this->resumeDelayMs * 1000);
            $this->transport->reset();
        }
        try {
            return $this->uploadFinish($uploadId, $size);
        } catch (UploadNotFound $finished) {
            // The first UploadFinish completed but its answer was lost: the object is there.
            $metadata = $this->getMetadata($bucket, $pathname);
            if ($metadata->size !== $size) {
                throw $finished;
            }
            return new WriteResult($pathname, $metadata->size, $metadata->lastModified, $metadata->checksum);
        }
    }

    /** @param resource $stream */
    private static function readChunk($stream, int $length): string
    {
        $chunk = '';
        while (\strlen($chunk) < $length && !\feof($stream)) {
            $piece = \fread($stream, $length - \strlen($chunk));
            if ($piece === false) {
                throw new \RuntimeException('reading the stream to upload failed');
            }
            if ($piece === '' && \feof($stream)) {
                break;
            }
            $chunk .= $piece;
        }
        return $chunk;
    }

    /** @return array<string, mixed> */
    private function copyArgs(string $sourceBucket, string $sourcePathname, string $destBucket, string $destPathname, string $visibility = '', array $metadata = [], array $headers = []): array
    {
        return self::compact([
            'source_bucket' => $sourceBucket, 'source_pathname' => $sourcePathname,
            'dest_bucket' => $destBucket, 'dest_pathname' => $destPathname, 'visibility' => $visibility,
        ]) + $this->objectOptions($metadata, $headers);
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string> $headers
     * @return array<string, mixed>
     */
    private function objectOptions(array $metadata, array $headers): array
    {
        $unknown = \array_diff(\array_keys($headers), self::HEADERS);
        if ($unknown !== []) {
            throw new \InvalidArgumentException('unknown object header(s) ' . \implode(', ', $unknown) . '; known: ' . \implode(', ', self::HEADERS));
        }
        $options = self::compact(\array_map('strval', $headers));
        if (isset($options['expires'])) {
            $options['expires'] = (int) $options['expires']; // Unix seconds
        }
        if ($metadata !== []) {
            // An object, so that JSON sends {} shapes even for list-like keys.
            $options['config'] = $this->transport->bytesAsBase64() ? (object) \array_map('strval', $metadata) : \array_map('strval', $metadata);
        }
        return $options;
    }

    private function bytesOut(string $bytes): string
    {
        return $this->transport->bytesAsBase64() ? \base64_encode($bytes) : $bytes;
    }

    private function bytesIn(mixed $bytes): string
    {
        if (!$this->transport->bytesAsBase64()) {
            return (string) $bytes;
        }
        $decoded = \base64_decode((string) $bytes, true);
        if ($decoded === false) {
            throw new ConnectionFailed('the server answered content that is not base64');
        }
        return $decoded;
    }

    /**
     * Drop empty strings: the server treats an absent field as its default.
     *
     * @param array<string, mixed> $fields
     * @return array<string, mixed>
     */
    private static function compact(array $fields): array
    {
        return \array_filter($fields, static fn ($v) => $v !== '' && $v !== null);
    }
}
