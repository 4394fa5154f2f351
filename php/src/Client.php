<?php

declare(strict_types=1);

namespace TrioS3Rpc;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\FileNotFound;
use TrioS3Rpc\Exception\InvalidArgument;
use TrioS3Rpc\Exception\InvalidVisibility;
use TrioS3Rpc\Exception\ObjectChanged;
use TrioS3Rpc\Exception\RpcError;
use TrioS3Rpc\Exception\UploadNotFound;
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
use TrioS3Rpc\Stream\ObjectStream;
use TrioS3Rpc\Stream\RangeReader;
use TrioS3Rpc\Transport\Base64;
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
final class Client implements ClientInterface
{
    /** The object headers a write may set, and GetMetadata answers. */
    public const HEADERS = ['cache_control', 'content_disposition', 'content_encoding', 'content_language', 'expires'];

    /**
     * The methods retried once on a new connection when the connection broke under them:
     * they only read, so running one twice changes nothing. Every other method (Write,
     * WriteFile, ReadFile, Copy, Move, Delete, DeleteMany, SetVisibility, RegisterBucket, the
     * Upload* calls, Cancel) is not retried: ConnectionFailed reaches the caller, who knows
     * whether repeating it is safe (writeStream resumes its upload from s3.UploadStatus).
     */
    public const IDEMPOTENT = [
        's3.Read', 's3.Exists', 's3.GetMetadata', 's3.ListObjects', 's3.ListBuckets', 's3.GetBucketInfo',
        's3.UploadStatus', 's3.TransferStatus', 's3.GetPublicURL', 's3.GetUploadURL', 's3.GetUploadForm',
    ];

    private readonly Transport $transport;
    private readonly ClientOptions $options;
    /** @var array<string, mixed> transfer_id and timeout, added to every call */
    private array $control = [];
    /** @var array<string, BucketInfo> s3.GetBucketInfo answers, by bucket name asked */
    private array $bucketInfo = [];

    /**
     * @param Transport|object $rpc a Transport, or any object with call(string $method, mixed $payload),
     *                              such as Spiral\Goridge\RPC\RPC (JSON codec assumed; wrap it in
     *                              ExternalRpc($rpc, bytesAsBase64: false) for msgpack)
     * @param int|null $chunkSize      overrides $options->chunkSize (kept for named callers of 0.1)
     * @param int|null $resumeAttempts overrides $options->resumeAttempts
     * @param int|null $resumeDelayMs  overrides $options->resumeDelayMs
     *
     * @throws InvalidArgument a setting out of range
     */
    public function __construct(
        object $rpc,
        ?ClientOptions $options = null,
        ?int $chunkSize = null,
        ?int $resumeAttempts = null,
        ?int $resumeDelayMs = null,
    ) {
        $this->transport = $rpc instanceof Transport ? $rpc : new ExternalRpc($rpc);
        $this->options = ($options ?? new ClientOptions())->with(
            chunkSize: $chunkSize, resumeAttempts: $resumeAttempts, resumeDelayMs: $resumeDelayMs,
        );
    }

    /**
     * A client on its own connection: tcp://host:port or unix:///path, JSON or msgpack
     * (Codec::best(): msgpack when ext-msgpack is loaded).
     *
     * @param ClientOptions|float|null $options every setting; a float is the readTimeout alone (0.1's third argument)
     *
     * @throws InvalidArgument an address that is neither tcp:// nor unix://, a setting out of range
     */
    public static function connect(string $address, ?Codec $codec = null, ClientOptions|float|null $options = null): self
    {
        $options = \is_float($options) ? new ClientOptions(readTimeout: $options) : ($options ?? new ClientOptions());
        $transport = new GoridgeTransport($address, $codec ?? Codec::Json, $options->connectTimeout, $options->readTimeout);
        return new self($transport, $options);
    }

    public function transport(): Transport
    {
        return $this->transport;
    }

    public function options(): ClientOptions
    {
        return $this->options;
    }

    /** The same client with every call on $bucket: $client->bucket('uploads')->write('a.txt', ...). */
    public function bucket(string $bucket): BucketClient
    {
        return new BucketClient($this, $bucket);
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
     * A read-only method (IDEMPOTENT) whose connection broke is retried once.
     *
     * @param array<string, mixed> $args
     *
     * @throws RpcError|ConnectionFailed
     */
    public function call(string $method, array $args = []): mixed
    {
        $args += $this->control;
        try {
            return $this->send($method, $args);
        } catch (ConnectionFailed $broken) {
            // Whatever happens next, not on that connection (Spiral's relay would keep it).
            $this->transport->reset();
            $retry = !$broken->callSent || ($this->options->retryIdempotent && \in_array($method, self::IDEMPOTENT, true));
            if (!$retry) {
                throw $broken;
            }
            return $this->send($method, $args);
        }
    }

    /** @param array<string, mixed> $args */
    private function send(string $method, array $args): mixed
    {
        $payload = $args === [] ? [] : $args;
        $timeout = $this->control['timeout'] ?? null;
        if ($timeout !== null && $this->transport instanceof GoridgeTransport) {
            // The server answers OPERATION_TIMEOUT at $timeout: wait a little longer than that.
            return $this->transport->call($method, $payload, (float) $timeout + 5.0);
        }
        return $this->transport->call($method, $payload);
    }

    // -- buckets ------------------------------------------------------------

    /**
     * @param array<string, mixed> $options max_concurrent_operations, part_size, concurrency, public_url, visibility_mode
     *
     * @throws RpcError|ConnectionFailed
     */
    public function registerBucket(string $name, string $server, string $bucket, ?string $prefix = null, Visibility|string|null $visibility = null, array $options = []): string
    {
        $answer = $this->call('s3.RegisterBucket', self::compact([
            'name' => $name, 'server' => $server, 'bucket' => $bucket, 'prefix' => $prefix, 'visibility' => $visibility,
        ] + $options));
        return (string) $answer['message'];
    }

    /** @throws RpcError|ConnectionFailed */
    public function listBuckets(): BucketList
    {
        return BucketList::fromArray($this->call('s3.ListBuckets'));
    }

    /**
     * How the server writes to $bucket: its visibility mode (acl or none, an auto bucket
     * resolved) and default visibility. Asked once per bucket and client, then remembered.
     *
     * @throws RpcError|ConnectionFailed
     */
    public function bucketInfo(string $bucket = ''): BucketInfo
    {
        return $this->bucketInfo[$bucket] ??= BucketInfo::fromArray(
            $this->call('s3.GetBucketInfo', ['bucket' => $bucket])
        );
    }

    // -- objects ------------------------------------------------------------

    /**
     * @param array<string, string> $metadata user metadata (x-amz-meta-*)
     * @param array<string, string|int> $headers  see HEADERS
     *
     * @throws RpcError|ConnectionFailed|InvalidArgument
     */
    public function write(string $bucket, string $pathname, string $content, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): WriteResult
    {
        return $this->writeEncoded($bucket, $pathname, $this->bytesOut($content), $visibility, $metadata, $contentType, $headers, $options);
    }

    /**
     * s3.Write of content already in its wire form (bytesOut()).
     *
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     */
    private function writeEncoded(string $bucket, string $pathname, string|Base64 $wireContent, Visibility|string|null $visibility, array $metadata, ?string $contentType, array $headers, ?WriteOptions $options): WriteResult
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'visibility' => self::visibility($visibility), 'content_type' => $contentType])
            + $this->objectOptions($metadata, $headers, $options);
        $args['content'] = $wireContent;
        unset($wireContent);
        return WriteResult::fromArray($this->call('s3.Write', $args));
    }

    /**
     * The whole object, or with $offset/$length a range of it (size is always the whole size).
     * With $ifMatch (an etag a read answered) the bytes are of that version, or ObjectChanged.
     *
     * @throws FileNotFound|ObjectChanged|RpcError|ConnectionFailed
     */
    public function read(string $bucket, string $pathname, ?int $offset = null, ?int $length = null, ?string $ifMatch = null): ReadResult
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'offset' => $offset, 'length' => $length, 'if_match' => $ifMatch]);
        $answer = $this->call('s3.Read', $args);
        $answer['content'] = $this->bytesIn($answer['content'] ?? '');
        return ReadResult::fromArray($answer);
    }

    /** @throws RpcError|ConnectionFailed */
    public function exists(string $bucket, string $pathname): bool
    {
        return (bool) $this->call('s3.Exists', self::compact(['bucket' => $bucket, 'pathname' => $pathname]))['exists'];
    }

    /**
     * Deleting a key that does not exist succeeds, as in S3.
     *
     * @throws RpcError|ConnectionFailed
     */
    public function delete(string $bucket, string $pathname): void
    {
        $this->call('s3.Delete', self::compact(['bucket' => $bucket, 'pathname' => $pathname]));
    }

    /**
     * @param list<string> $pathnames
     *
     * @throws RpcError|ConnectionFailed
     */
    public function deleteMany(string $bucket, array $pathnames): DeleteManyResult
    {
        $args = self::compact(['bucket' => $bucket]) + ['pathnames' => \array_values($pathnames)];
        return DeleteManyResult::fromArray($this->call('s3.DeleteMany', $args));
    }

    /**
     * A Copy onto itself succeeds and changes nothing.
     *
     * @param array<string, string> $metadata replaces the user metadata when given
     * @param array<string, string|int> $headers  see HEADERS
     *
     * @throws RpcError|ConnectionFailed|InvalidArgument
     */
    public function copy(string $sourceBucket, string $sourcePathname, string $destBucket, string $destPathname, Visibility|string|null $visibility = null, array $metadata = [], array $headers = [], ?WriteOptions $options = null): WriteResult
    {
        return WriteResult::fromArray($this->call('s3.Copy', $this->copyArgs($sourceBucket, $sourcePathname, $destBucket, $destPathname, $visibility, $metadata, $headers, $options)));
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed|InvalidArgument
     */
    public function move(string $sourceBucket, string $sourcePathname, string $destBucket, string $destPathname, Visibility|string|null $visibility = null, array $metadata = [], array $headers = [], ?WriteOptions $options = null): WriteResult
    {
        return WriteResult::fromArray($this->call('s3.Move', $this->copyArgs($sourceBucket, $sourcePathname, $destBucket, $destPathname, $visibility, $metadata, $headers, $options)));
    }

    /** @throws FileNotFound|RpcError|ConnectionFailed */
    public function getMetadata(string $bucket, string $pathname): Metadata
    {
        return Metadata::fromArray($this->call('s3.GetMetadata', self::compact(['bucket' => $bucket, 'pathname' => $pathname])));
    }

    /** @throws InvalidVisibility|RpcError|ConnectionFailed */
    public function setVisibility(string $bucket, string $pathname, Visibility|string $visibility): void
    {
        $this->call('s3.SetVisibility', self::compact(['bucket' => $bucket, 'pathname' => $pathname]) + ['visibility' => self::visibility($visibility)]);
    }

    /**
     * A permanent URL ($expiresIn 0) or a presigned GET valid $expiresIn seconds (at most 7 days).
     * $responseContentType and $responseContentDisposition make the download answer those headers
     * (presigned URLs only), e.g. 'attachment; filename="report.pdf"'.
     *
     * @throws RpcError|ConnectionFailed
     */
    public function getPublicUrl(string $bucket, string $pathname, int $expiresIn = 0, ?string $responseContentType = null, ?string $responseContentDisposition = null): PublicUrl
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

    /**
     * A presigned PUT: send the body to url with exactly the answered headers before expiresAt.
     *
     * @throws RpcError|ConnectionFailed
     */
    public function getUploadUrl(string $bucket, string $pathname, int $expiresIn = 3600, ?string $contentType = null): UploadUrl
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'content_type' => $contentType]);
        $args['expires_in'] = $expiresIn;
        return UploadUrl::fromArray($this->call('s3.GetUploadURL', $args));
    }

    /**
     * A presigned POST policy for browser uploads: keys under $keyPrefix, at most $maxSize bytes,
     * and a Content-Type starting with $contentTypePrefix (null: any).
     *
     * @throws RpcError|ConnectionFailed
     */
    public function getUploadForm(string $bucket, string $keyPrefix, int $maxSize, int $expiresIn = 3600, ?string $contentTypePrefix = null, int $minSize = 0): UploadForm
    {
        $args = self::compact(['bucket' => $bucket, 'content_type_prefix' => $contentTypePrefix]);
        $args += ['key_prefix' => $keyPrefix, 'max_size' => $maxSize, 'min_size' => $minSize, 'expires_in' => $expiresIn];
        return UploadForm::fromArray($this->call('s3.GetUploadForm', $args));
    }

    /**
     * One page; pass $listing->nextContinuationToken for the next while isTruncated
     * (or iterate listAll(), which does).
     *
     * @throws RpcError|ConnectionFailed
     */
    public function listObjects(string $bucket, ?string $prefix = null, ?string $delimiter = null, int $maxKeys = 1000, ?string $continuationToken = null): Listing
    {
        $args = self::compact([
            'bucket' => $bucket, 'prefix' => $prefix, 'delimiter' => $delimiter,
            'continuation_token' => $continuationToken === '' ? null : $continuationToken,
        ]);
        $args['max_keys'] = $maxKeys;
        return Listing::fromArray($this->call('s3.ListObjects', $args));
    }

    /**
     * Every object under $prefix, page after page as the iteration needs them.
     *
     * @return \Generator<int, ObjectEntry, mixed, void>
     *
     * @throws RpcError|ConnectionFailed
     */
    public function listAll(string $bucket, ?string $prefix = null, int $pageSize = 1000): \Generator
    {
        $token = null;
        do {
            $page = $this->listObjects($bucket, $prefix, null, $pageSize, $token);
            yield from $page->objects;
            $token = $page->nextContinuationToken;
        } while ($page->isTruncated && $token !== '');
    }

    // -- files and chunked uploads -------------------------------------------

    /**
     * Upload a local file the server can read (under its s3.local_roots). A big file takes
     * longer than the default readTimeout: give the call its own, withControl(timeout: ...).
     *
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed|InvalidArgument
     */
    public function writeFile(string $bucket, string $pathname, string $sourcePath, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, bool $resume = false, array $headers = [], ?WriteOptions $options = null): WriteResult
    {
        $args = self::compact([
            'bucket' => $bucket, 'pathname' => $pathname, 'source_path' => $sourcePath,
            'visibility' => self::visibility($visibility), 'content_type' => $contentType,
        ]) + $this->objectOptions($metadata, $headers, $options);
        if ($resume) {
            $args['resume'] = true;
        }
        return WriteResult::fromArray($this->call('s3.WriteFile', $args));
    }

    /** @throws RpcError|ConnectionFailed */
    public function readFile(string $bucket, string $pathname, string $destinationPath): ReadFileResult
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'destination_path' => $destinationPath]);
        return ReadFileResult::fromArray($this->call('s3.ReadFile', $args));
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     * @return string the upload id, a token any server instance with the same configuration accepts
     *
     * @throws RpcError|ConnectionFailed|InvalidArgument
     */
    public function uploadStart(string $bucket, string $pathname, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): string
    {
        $args = self::compact(['bucket' => $bucket, 'pathname' => $pathname, 'visibility' => self::visibility($visibility), 'content_type' => $contentType])
            + $this->objectOptions($metadata, $headers, $options);
        return (string) $this->call('s3.UploadStart', $args)['upload_id'];
    }

    /**
     * @return int the bytes received so far
     *
     * @throws UploadNotFound|RpcError|ConnectionFailed
     */
    public function uploadChunk(string $uploadId, string $content, ?int $offset = null): int
    {
        $args = ['upload_id' => $uploadId, 'content' => $this->bytesOut($content)];
        unset($content);
        if ($offset !== null) {
            $args['offset'] = $offset;
        }
        return (int) $this->call('s3.UploadChunk', $args)['size'];
    }

    /**
     * s3.UploadChunk of a chunk, let go of once it is in the arguments (a resumed upload
     * reads the chunk again from the stream).
     */
    private function sendChunk(string $uploadId, string &$chunk, int $offset): int
    {
        $args = ['upload_id' => $uploadId, 'content' => $this->bytesOut($chunk), 'offset' => $offset];
        $chunk = '';
        return (int) $this->call('s3.UploadChunk', $args)['size'];
    }

    /** @throws UploadNotFound|RpcError|ConnectionFailed */
    public function uploadStatus(string $uploadId): UploadStatus
    {
        return UploadStatus::fromArray($this->call('s3.UploadStatus', ['upload_id' => $uploadId]));
    }

    /**
     * @param int $size the total bytes sent: the server completes only with every one of them
     *
     * @throws UploadNotFound|RpcError|ConnectionFailed
     */
    public function uploadFinish(string $uploadId, int $size): WriteResult
    {
        return WriteResult::fromArray(
            $this->call('s3.UploadFinish', ['upload_id' => $uploadId, 'size' => $size])
        );
    }

    /** @throws RpcError|ConnectionFailed */
    public function uploadAbort(string $uploadId): void
    {
        $this->call('s3.UploadAbort', ['upload_id' => $uploadId]);
    }

    /** @throws RpcError|ConnectionFailed */
    public function transferStatus(string $transferId): TransferStatus
    {
        return TransferStatus::fromArray($this->call('s3.TransferStatus', ['transfer_id' => $transferId]));
    }

    /**
     * @return string the transfer's state after the request
     *
     * @throws RpcError|ConnectionFailed
     */
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
     * @param resource|\Psr\Http\Message\StreamInterface $stream a PHP stream, or a PSR-7 stream
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     *
     * @throws RpcError|ConnectionFailed|InvalidArgument
     */
    public function writeStream(string $bucket, string $pathname, $stream, Visibility|string|null $visibility = null, array $metadata = [], ?string $contentType = null, array $headers = [], ?WriteOptions $options = null): WriteResult
    {
        $stream = Stream\Psr7Source::resource($stream);
        $chunkSize = $this->options->chunkSize;
        $seekable = (bool) \stream_get_meta_data($stream)['seekable'];
        $start = $seekable ? (int) \ftell($stream) : 0;
        [$chunk, $length] = $this->readChunk($stream, $chunkSize);
        if (\feof($stream) && $length < $chunkSize) {
            return $this->writeEncoded($bucket, $pathname, $this->bytesOut($chunk), $visibility, $metadata, $contentType, $headers, $options);
        }
        $uploadId = $this->uploadStart($bucket, $pathname, $visibility, $metadata, $contentType, $headers, $options);
        try {
            $offset = 0;
            $failures = 0;
            while ($length > 0) {
                try {
                    $received = $this->sendChunk($uploadId, $chunk, $offset);
                    $failures = 0;
                    $offset += $length;
                    if ($received !== $offset) {
                        // A resent range the server had already received (its answer was lost
                        // with the connection): continue from where the server is.
                        if ($received < $offset || !$seekable || \fseek($stream, $start + $received) !== 0) {
                            throw new \UnexpectedValueException("the server holds $received bytes of the upload, $offset were sent");
                        }
                        $offset = $received;
                    }
                } catch (ConnectionFailed $broken) {
                    if (!$seekable || ++$failures > $this->options->resumeAttempts) {
                        throw $broken;
                    }
                    $offset = $this->resumePoint($uploadId, $failures);
                    if (\fseek($stream, $start + $offset) !== 0) {
                        throw $broken;
                    }
                }
                [$chunk, $length] = $this->readChunk($stream, $chunkSize);
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
     * A readable, seekable stream of one version of the object, fetched as ranged s3.Reads
     * of chunkSize bytes as it is read: memory stays at about one chunk whatever the size.
     * The first range is read now, so a missing object fails here (FileNotFound), not at
     * the first fread. Every later range carries the first one's ETag: an object replaced
     * meanwhile throws ObjectChanged from fread, never bytes of the new version. A broken
     * connection resumes at the byte reached, same ETag (resumeAttempts, resumeDelayMs).
     *
     * @return resource
     *
     * @throws FileNotFound|RpcError|ConnectionFailed
     */
    public function readStream(string $bucket, string $pathname)
    {
        return ObjectStream::open(new RangeReader($this, $bucket, $pathname, $this->options->chunkSize));
    }

    /**
     * Wait before resume attempt $failures and drop the broken connection.
     *
     * @internal for the streams
     */
    public function pauseBeforeResume(int $failures): void
    {
        \usleep($this->options->resumeDelayUs($failures));
        $this->transport->reset();
    }

    // -- internals ----------------------------------------------------------

    private function resumePoint(string $uploadId, int $failures): int
    {
        while (true) {
            $this->pauseBeforeResume($failures);
            try {
                return $this->uploadStatus($uploadId)->committedBytes;
            } catch (ConnectionFailed $e) {
                if (++$failures > $this->options->resumeAttempts) {
                    throw $e;
                }
            }
        }
    }

    private function finishUpload(string $uploadId, string $bucket, string $pathname, int $size): WriteResult
    {
        $failures = 0;
        while (true) {
            try {
                return $this->uploadFinish($uploadId, $size);
            } catch (ConnectionFailed $broken) {
                if (++$failures > \max(1, $this->options->resumeAttempts)) {
                    throw $broken;
                }
                $this->pauseBeforeResume($failures);
            } catch (UploadNotFound $finished) {
                if ($failures === 0) {
                    throw $finished;
                }
                // An UploadFinish completed but its answer was lost: the object is there.
                $metadata = $this->getMetadata($bucket, $pathname);
                if ($metadata->size !== $size) {
                    throw $finished;
                }
                return new WriteResult($pathname, $metadata->size, $metadata->lastModified, $metadata->checksum);
            }
        }
    }

    /**
     * Up to $length bytes of $stream, and how many they are. In one fread where the stream
     * gives them so (a file): no growing string to copy.
     *
     * @param resource $stream
     * @return array{string, int}
     */
    private function readChunk($stream, int $length): array
    {
        $chunk = '';
        while (\strlen($chunk) < $length && !\feof($stream)) {
            $piece = \fread($stream, $length - \strlen($chunk));
            if ($piece === false) {
                throw new \RuntimeException('reading the stream to upload failed');
            }
            $chunk .= $piece;
            unset($piece);
        }
        return [$chunk, \strlen($chunk)];
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     * @return array<string, mixed>
     */
    private function copyArgs(string $sourceBucket, string $sourcePathname, string $destBucket, string $destPathname, Visibility|string|null $visibility, array $metadata, array $headers, ?WriteOptions $options): array
    {
        return self::compact([
            'source_bucket' => $sourceBucket, 'source_pathname' => $sourcePathname,
            'dest_bucket' => $destBucket, 'dest_pathname' => $destPathname, 'visibility' => self::visibility($visibility),
        ]) + $this->objectOptions($metadata, $headers, $options);
    }

    /**
     * @param array<string, string> $metadata
     * @param array<string, string|int> $headers
     * @return array<string, mixed>
     */
    private function objectOptions(array $metadata, array $headers, ?WriteOptions $write = null): array
    {
        $unknown = \array_diff(\array_keys($headers), self::HEADERS);
        if ($unknown !== []) {
            throw new InvalidArgument('unknown object header(s) ' . \implode(', ', $unknown) . '; known: ' . \implode(', ', self::HEADERS));
        }
        $options = \array_filter(\array_map('strval', $headers), static fn (string $v): bool => $v !== '');
        if (isset($options['expires'])) {
            $options['expires'] = (int) $options['expires']; // Unix seconds
        }
        if ($metadata !== []) {
            // An object, so that JSON sends {} shapes even for list-like keys.
            $options['config'] = $this->transport->bytesAsBase64() ? (object) \array_map('strval', $metadata) : \array_map('strval', $metadata);
        }
        return $options + ($write?->toArgs() ?? []);
    }

    private static function visibility(Visibility|string|null $visibility): ?string
    {
        return $visibility instanceof Visibility ? $visibility->value : $visibility;
    }

    /**
     * Bytes in their wire form: as they are under msgpack; under JSON a Base64, which this
     * package's transport encodes a piece at a time as it sends it (so the text is never
     * held whole), or for any other transport the text itself.
     */
    private function bytesOut(string $bytes): string|Base64
    {
        if (!$this->transport->bytesAsBase64()) {
            return $bytes;
        }
        return $this->transport instanceof GoridgeTransport ? new Base64($bytes) : \base64_encode($bytes);
    }

    private function bytesIn(mixed $bytes): string
    {
        if (!$this->transport->bytesAsBase64()) {
            return (string) $bytes;
        }
        $decoded = Base64::decode((string) $bytes);
        if ($decoded === false) {
            throw new ConnectionFailed('the server answered content that is not base64');
        }
        return $decoded;
    }

    /**
     * Drop the arguments not given: the server treats an absent field as its default. An
     * empty string is sent (an empty pathname is the server's to refuse, by name).
     *
     * @param array<string, mixed> $fields
     * @return array<string, mixed>
     */
    private static function compact(array $fields): array
    {
        return \array_filter($fields, static fn ($v) => $v !== null);
    }
}
