<?php

declare(strict_types=1);

namespace TrioS3Rpc\Flysystem;

use DateTimeInterface;
use League\Flysystem\ChecksumAlgoIsNotSupported;
use League\Flysystem\ChecksumProvider;
use League\Flysystem\Config;
use League\Flysystem\DirectoryAttributes;
use League\Flysystem\FileAttributes;
use League\Flysystem\FilesystemAdapter;
use League\Flysystem\PathPrefixer;
use League\Flysystem\StorageAttributes;
use League\Flysystem\UnableToCheckDirectoryExistence;
use League\Flysystem\UnableToCheckFileExistence;
use League\Flysystem\UnableToCopyFile;
use League\Flysystem\UnableToCreateDirectory;
use League\Flysystem\UnableToDeleteDirectory;
use League\Flysystem\UnableToDeleteFile;
use League\Flysystem\UnableToGeneratePublicUrl;
use League\Flysystem\UnableToGenerateTemporaryUrl;
use League\Flysystem\UnableToListContents;
use League\Flysystem\UnableToMoveFile;
use League\Flysystem\UnableToProvideChecksum;
use League\Flysystem\UnableToReadFile;
use League\Flysystem\UnableToRetrieveMetadata;
use League\Flysystem\UnableToSetVisibility;
use League\Flysystem\UnableToWriteFile;
use League\Flysystem\UrlGeneration\PublicUrlGenerator;
use League\Flysystem\UrlGeneration\TemporaryUrlGenerator;
use League\Flysystem\Visibility;
use League\MimeTypeDetection\FinfoMimeTypeDetector;
use League\MimeTypeDetection\MimeTypeDetector;
use Throwable;
use TrioS3Rpc\Client;
use TrioS3Rpc\Exception\InvalidArgument;
use TrioS3Rpc\Exception\TrioS3RpcException;
use TrioS3Rpc\Result\Metadata;
use TrioS3Rpc\Result\ObjectEntry;
use TrioS3Rpc\WriteOptions;

/**
 * Flysystem v3 over a trio-s3rpc bucket, behaving as Flysystem's AWS S3 v3 adapter does:
 * directories are key prefixes (createDirectory writes a "dir/" marker), listings are
 * paginated ListObjects (shallow with the "/" delimiter), copies keep the source's visibility
 * unless told otherwise (retain_visibility), deleteDirectory is s3.DeleteMany of every key
 * under the prefix. Reads and writes of streams go through Client::readStream/writeStream,
 * in bounded memory whatever the size.
 *
 * The bucket's visibility mode comes from the server (s3.GetBucketInfo, asked once):
 * "acl" (per-object visibility) or "none" (the service keeps no object ACLs: every object
 * has the bucket's visibility). Under "none" a write or setVisibility asking for the
 * bucket's own visibility succeeds and one asking for the other fails (UnableToWriteFile,
 * UnableToSetVisibility), the same rule for both, as the server applies it. $visibilityMode
 * overrides what the server says (for a server older than s3.GetBucketInfo).
 *
 * Config options on writes, by the names Flysystem's AWS S3 v3 adapter takes: visibility,
 * directory_visibility, mimetype (or ContentType), Metadata (or metadata: user metadata),
 * CacheControl, ContentDisposition, ContentEncoding, ContentLanguage, Expires (or their
 * snake_case names), StorageClass, ServerSideEncryption, SSEKMSKeyId, ACL (public-read or
 * private, as a visibility). The other options of the AWS adapter (Tagging, Grant*,
 * SSECustomer*, RequestPayer, WebsiteRedirectLocation, ChecksumAlgorithm, ...) have no
 * counterpart in the s3.* contract: a write naming one fails with UnableToWriteFile saying
 * so, instead of ignoring it.
 *
 * checksum_algo: etag (default, as the AWS adapter: the service's ETag), crc32c (the
 * server's stored checksum), or md5 or any other of hash_algos() (the bytes are read and
 * hashed, since an ETag is not always an MD5).
 */
final class TrioS3RpcAdapter implements FilesystemAdapter, PublicUrlGenerator, TemporaryUrlGenerator, ChecksumProvider
{
    /** Options of the AWS adapter that the s3.* contract cannot carry: refused, not ignored. */
    public const UNSUPPORTED_OPTIONS = [
        'Tagging', 'GrantFullControl', 'GrantRead', 'GrantReadACP', 'GrantWriteACP', 'RequestPayer',
        'SSECustomerAlgorithm', 'SSECustomerKey', 'SSECustomerKeyMD5', 'WebsiteRedirectLocation',
        'ChecksumAlgorithm', 'MetadataDirective', 'CopySourceSSECustomerAlgorithm',
        'CopySourceSSECustomerKey', 'CopySourceSSECustomerKeyMD5',
    ];

    /** get_object_options of temporaryUrl that a presigned GET of the server can carry. */
    private const GET_OBJECT_OPTIONS = ['ResponseContentType', 'ResponseContentDisposition'];

    private const HEADER_OPTIONS = [
        'CacheControl' => 'cache_control',
        'ContentDisposition' => 'content_disposition',
        'ContentEncoding' => 'content_encoding',
        'ContentLanguage' => 'content_language',
        'Expires' => 'expires',
    ];

    private readonly PathPrefixer $prefixer;
    private readonly MimeTypeDetector $mimeTypeDetector;

    /**
     * @param string      $bucket         a bucket of the server's s3.buckets ('' = its s3.default)
     * @param string|null $visibilityMode acl | none; null: as the server says
     *
     * @throws InvalidArgument a visibilityMode other than acl, none or null
     */
    public function __construct(
        private readonly Client $client,
        private readonly string $bucket,
        string $prefix = '',
        private ?string $visibilityMode = null,
        ?MimeTypeDetector $mimeTypeDetector = null,
        private readonly int $listPageSize = 1000,
    ) {
        if ($visibilityMode !== null && !\in_array($visibilityMode, ['acl', 'none'], true)) {
            throw new InvalidArgument("visibilityMode must be 'acl', 'none' or null (as the server says), got '$visibilityMode'");
        }
        $this->prefixer = new PathPrefixer($prefix);
        $this->mimeTypeDetector = $mimeTypeDetector ?? new FinfoMimeTypeDetector();
    }

    /**
     * The bucket's visibility mode: as given, else as the server answers (once).
     *
     * @throws TrioS3RpcException
     */
    public function visibilityMode(): string
    {
        return $this->visibilityMode ??= $this->client->bucketInfo($this->bucket)->visibilityMode;
    }

    public function fileExists(string $path): bool
    {
        try {
            return $this->client->exists($this->bucket, $this->prefixer->prefixPath($path));
        } catch (TrioS3RpcException $e) {
            throw UnableToCheckFileExistence::forLocation($path, $e);
        }
    }

    public function directoryExists(string $path): bool
    {
        try {
            // Without a delimiter: only an object under the prefix makes the directory, not an
            // empty folder a service such as SeaweedFS may still list.
            $listing = $this->client->listObjects($this->bucket, $this->prefixer->prefixDirectoryPath($path), '', 1);
            return $listing->objects !== [];
        } catch (TrioS3RpcException $e) {
            throw UnableToCheckDirectoryExistence::forLocation($path, $e);
        }
    }

    public function write(string $path, string $contents, Config $config): void
    {
        try {
            [$visibility, $metadata, $contentType, $headers, $options] = $this->writeOptions($path, $contents, $config);
            $this->client->write($this->bucket, $this->prefixer->prefixPath($path), $contents, $visibility, $metadata, $contentType, $headers, $options);
        } catch (TrioS3RpcException $e) {
            throw UnableToWriteFile::atLocation($path, $e->getMessage(), $e);
        }
    }

    public function writeStream(string $path, $contents, Config $config): void
    {
        try {
            [$visibility, $metadata, $contentType, $headers, $options] = $this->writeOptions($path, $contents, $config);
            $this->client->writeStream($this->bucket, $this->prefixer->prefixPath($path), $contents, $visibility, $metadata, $contentType, $headers, $options);
        } catch (TrioS3RpcException $e) {
            throw UnableToWriteFile::atLocation($path, $e->getMessage(), $e);
        }
    }

    public function read(string $path): string
    {
        try {
            return $this->client->read($this->bucket, $this->prefixer->prefixPath($path))->content;
        } catch (TrioS3RpcException $e) {
            throw UnableToReadFile::fromLocation($path, $e->getMessage(), $e);
        }
    }

    public function readStream(string $path)
    {
        try {
            return $this->client->readStream($this->bucket, $this->prefixer->prefixPath($path));
        } catch (TrioS3RpcException $e) {
            throw UnableToReadFile::fromLocation($path, $e->getMessage(), $e);
        }
    }

    public function delete(string $path): void
    {
        try {
            $this->client->delete($this->bucket, $this->prefixer->prefixPath($path));
        } catch (TrioS3RpcException $e) {
            throw UnableToDeleteFile::atLocation($path, $e->getMessage(), $e);
        }
    }

    /**
     * Every key under the directory, page by page (each page one s3.DeleteMany), then the
     * directory markers of the prefixes those keys were in, deepest first. On S3 a marker that
     * does not exist deletes as a no-op; SeaweedFS keeps a folder for every prefix ever written
     * and lists it while it exists, so without this the directory would still be listed.
     */
    public function deleteDirectory(string $path): void
    {
        $prefix = \ltrim(\rtrim($this->prefixer->prefixPath($path), '/') . '/', '/');
        $markers = [$prefix => true];
        try {
            do {
                $page = $this->client->listObjects($this->bucket, $prefix, '', $this->listPageSize);
                $keys = \array_map(static fn (ObjectEntry $o): string => $o->key, $page->objects);
                if ($keys === []) {
                    break;
                }
                foreach ($keys as $key) {
                    // "dir/a/b/f.txt" is in dir/a/b/ and dir/a/.
                    $directory = \rtrim($key, '/');
                    while (($end = \strrpos($directory, '/')) !== false && $end >= \strlen($prefix)) {
                        $directory = \substr($directory, 0, $end);
                        $markers[$directory . '/'] = true;
                    }
                }
                $this->deleteKeys($path, $keys);
            } while (true);
            $markers = \array_keys($markers);
            \usort($markers, static fn (string $a, string $b): int => \strlen($b) <=> \strlen($a));
            foreach (\array_chunk($markers, $this->listPageSize) as $batch) {
                $this->deleteKeys($path, $batch);
            }
        } catch (TrioS3RpcException $e) {
            throw UnableToDeleteDirectory::atLocation($path, $e->getMessage(), $e);
        }
    }

    /** @param list<string> $keys */
    private function deleteKeys(string $path, array $keys): void
    {
        $result = $this->client->deleteMany($this->bucket, $keys);
        if ($result->errors !== []) {
            $first = $result->errors[0];
            throw UnableToDeleteDirectory::atLocation(
                $path,
                \count($result->errors) . " object(s) could not be deleted, first {$first->pathname}: {$first->code}: {$first->message}",
            );
        }
    }

    public function createDirectory(string $path, Config $config): void
    {
        $visibility = $config->get(Config::OPTION_DIRECTORY_VISIBILITY, $config->get(Config::OPTION_VISIBILITY));
        try {
            $this->client->write(
                $this->bucket,
                $this->prefixer->prefixDirectoryPath($path),
                '',
                \is_string($visibility) ? $visibility : null,
            );
        } catch (TrioS3RpcException $e) {
            throw UnableToCreateDirectory::atLocation($path, $e->getMessage(), $e);
        }
    }

    public function setVisibility(string $path, string $visibility): void
    {
        $key = $this->prefixer->prefixPath($path);
        try {
            // The object must exist: without ACLs the server has nothing to change for the
            // bucket's own visibility and does not look at it, and some ACL services answer
            // a PutObjectAcl of a missing key with success.
            $this->client->getMetadata($this->bucket, $key);
            $this->client->setVisibility($this->bucket, $key, $visibility);
        } catch (TrioS3RpcException $e) {
            throw UnableToSetVisibility::atLocation($path, $e->getMessage(), $e);
        }
    }

    public function visibility(string $path): FileAttributes
    {
        $metadata = $this->metadata($path, FileAttributes::ATTRIBUTE_VISIBILITY);
        return new FileAttributes($path, null, $metadata->visibility);
    }

    public function mimeType(string $path): FileAttributes
    {
        $attributes = $this->fileAttributes($path, FileAttributes::ATTRIBUTE_MIME_TYPE);
        if ($attributes->mimeType() === null) {
            throw UnableToRetrieveMetadata::mimeType($path, 'the object has no content type');
        }
        return $attributes;
    }

    public function lastModified(string $path): FileAttributes
    {
        return $this->fileAttributes($path, FileAttributes::ATTRIBUTE_LAST_MODIFIED);
    }

    public function fileSize(string $path): FileAttributes
    {
        return $this->fileAttributes($path, FileAttributes::ATTRIBUTE_FILE_SIZE);
    }

    public function listContents(string $path, bool $deep): iterable
    {
        $prefix = \trim($this->prefixer->prefixPath($path), '/');
        $prefix = $prefix === '' ? '' : $prefix . '/';
        $token = null;
        try {
            do {
                $page = $this->client->listObjects($this->bucket, $prefix, $deep ? null : '/', $this->listPageSize, $token);
                foreach ($page->commonPrefixes as $directory) {
                    yield new DirectoryAttributes(\rtrim($this->prefixer->stripPrefix($directory), '/'));
                }
                foreach ($page->objects as $object) {
                    if ($object->key === $prefix) {
                        continue; // the directory's own marker
                    }
                    yield $this->listedAttributes($object);
                }
                $token = $page->nextContinuationToken;
            } while ($page->isTruncated && $token !== '');
        } catch (TrioS3RpcException $e) {
            throw UnableToListContents::atLocation($path, $deep, $e);
        }
    }

    public function move(string $source, string $destination, Config $config): void
    {
        if ($source === $destination) {
            return;
        }
        try {
            $visibility = $this->copyVisibility($source, $config);
            $this->client->move(
                $this->bucket,
                $this->prefixer->prefixPath($source),
                $this->bucket,
                $this->prefixer->prefixPath($destination),
                $visibility,
            );
        } catch (TrioS3RpcException $e) {
            throw UnableToMoveFile::fromLocationTo($source, $destination, $e);
        }
    }

    public function copy(string $source, string $destination, Config $config): void
    {
        if ($source === $destination) {
            return;
        }
        try {
            $visibility = $this->copyVisibility($source, $config);
            $this->client->copy(
                $this->bucket,
                $this->prefixer->prefixPath($source),
                $this->bucket,
                $this->prefixer->prefixPath($destination),
                $visibility,
            );
        } catch (TrioS3RpcException $e) {
            throw UnableToCopyFile::fromLocationTo($source, $destination, $e);
        }
    }

    public function publicUrl(string $path, Config $config): string
    {
        try {
            return $this->client->getPublicUrl($this->bucket, $this->prefixer->prefixPath($path))->url;
        } catch (TrioS3RpcException $e) {
            throw UnableToGeneratePublicUrl::dueToError($path, $e);
        }
    }

    /**
     * Config: response_content_type and response_content_disposition (or Laravel's
     * ResponseContentType / ResponseContentDisposition) name the download.
     */
    public function temporaryUrl(string $path, DateTimeInterface $expiresAt, Config $config): string
    {
        $options = (array) $config->get('get_object_options', []);
        $unknown = \array_diff(\array_keys($options), self::GET_OBJECT_OPTIONS);
        if ($unknown !== []) {
            throw new UnableToGenerateTemporaryUrl(
                'get_object_options ' . \implode(', ', $unknown) . ' cannot be carried by a presigned URL of trio-s3rpc; it takes ' . \implode(', ', self::GET_OBJECT_OPTIONS),
                $path,
            );
        }
        if ($config->get('presigned_request_options', []) !== []) {
            throw new UnableToGenerateTemporaryUrl('presigned_request_options are not supported: the server signs the URL', $path);
        }
        try {
            return $this->client->getPublicUrl(
                $this->bucket,
                $this->prefixer->prefixPath($path),
                self::secondsUntil($path, $expiresAt),
                self::optionalString($options['ResponseContentType'] ?? $config->get('response_content_type', $config->get('ResponseContentType'))),
                self::optionalString($options['ResponseContentDisposition'] ?? $config->get('response_content_disposition', $config->get('ResponseContentDisposition'))),
            )->url;
        } catch (TrioS3RpcException $e) {
            throw UnableToGenerateTemporaryUrl::dueToError($path, $e);
        }
    }

    /** Seconds from now to $expiresAt; one in the past (or now) is refused, not clamped. */
    private static function secondsUntil(string $path, DateTimeInterface $expiresAt): int
    {
        $seconds = $expiresAt->getTimestamp() - \time();
        if ($seconds < 1) {
            throw new UnableToGenerateTemporaryUrl(
                'the expiry ' . $expiresAt->format(\DATE_ATOM) . ' is not in the future',
                $path,
            );
        }
        return $seconds;
    }

    private static function optionalString(mixed $value): ?string
    {
        return $value === null || $value === '' ? null : (string) $value;
    }

    /**
     * A presigned PUT, as Laravel's temporaryUploadUrl answers: ['url' => ..., 'headers' => [...]].
     * Options: ContentType (or mimetype).
     *
     * @param Config|array<string, mixed> $config
     * @return array{url: string, headers: array<string, string>}
     */
    public function temporaryUploadUrl(string $path, DateTimeInterface $expiresAt, Config|array $config = []): array
    {
        $config = $config instanceof Config ? $config : new Config($config);
        try {
            $upload = $this->client->getUploadUrl(
                $this->bucket,
                $this->prefixer->prefixPath($path),
                self::secondsUntil($path, $expiresAt),
                self::optionalString($config->get('mimetype', $config->get('ContentType'))),
            );
            return ['url' => $upload->url, 'headers' => $upload->headers];
        } catch (TrioS3RpcException $e) {
            throw UnableToGenerateTemporaryUrl::dueToError($path, $e);
        }
    }

    /** For Laravel's FilesystemAdapter::url(), which looks for this method on the adapter. */
    public function getUrl(string $path): string
    {
        return $this->publicUrl($path, new Config());
    }

    /**
     * For Laravel's FilesystemAdapter::temporaryUrl(), which looks for this method on the adapter.
     *
     * @param array<string, mixed> $options ResponseContentType, ResponseContentDisposition
     */
    public function getTemporaryUrl(string $path, DateTimeInterface $expiration, array $options = []): string
    {
        return $this->temporaryUrl($path, $expiration, new Config($options));
    }

    public function checksum(string $path, Config $config): string
    {
        $algo = (string) $config->get('checksum_algo', 'etag');
        try {
            if (\str_ends_with($path, '/')) {
                throw new UnableToProvideChecksum('a directory has no checksum', $path);
            }
            $metadata = $this->client->getMetadata($this->bucket, $this->prefixer->prefixPath($path));
            if ($algo === 'etag') {
                if ($metadata->etag === '') {
                    throw new UnableToProvideChecksum('the storage service answered no ETag', $path);
                }
                return \trim($metadata->etag, '"');
            }
            if ($algo === 'crc32c' && \str_starts_with($metadata->checksum, 'crc32c:')) {
                return \substr($metadata->checksum, 7);
            }
            if (!\in_array($algo, \hash_algos(), true)) {
                throw new ChecksumAlgoIsNotSupported("checksum_algo '$algo' is not supported: use md5, etag, crc32c or one of hash_algos()");
            }
            $context = \hash_init($algo);
            $stream = $this->client->readStream($this->bucket, $this->prefixer->prefixPath($path));
            \hash_update_stream($context, $stream);
            \fclose($stream);
            return \hash_final($context);
        } catch (TrioS3RpcException $e) {
            throw new UnableToProvideChecksum($e->getMessage(), $path, $e);
        }
    }

    // -- internals ----------------------------------------------------------

    private function metadata(string $path, string $type): Metadata
    {
        if (\str_ends_with($path, '/')) {
            throw UnableToRetrieveMetadata::create($path, $type, 'the path is a directory');
        }
        try {
            return $this->client->getMetadata($this->bucket, $this->prefixer->prefixPath($path));
        } catch (TrioS3RpcException $e) {
            throw UnableToRetrieveMetadata::create($path, $type, $e->getMessage(), $e);
        }
    }

    private function fileAttributes(string $path, string $type): FileAttributes
    {
        $metadata = $this->metadata($path, $type);
        $extra = [
            'ETag' => $metadata->etag,
            'Metadata' => $metadata->metadata,
            'StorageClass' => $metadata->storageClass,
            'ServerSideEncryption' => $metadata->sse,
            'SSEKMSKeyId' => $metadata->sseKmsKeyId,
            'Checksum' => $metadata->checksum,
        ];
        foreach (self::HEADER_OPTIONS as $awsName => $name) {
            $extra[$awsName] = $metadata->headers[$name] ?? '';
        }
        return new FileAttributes(
            $path,
            $metadata->size,
            $metadata->visibility,
            $metadata->lastModified,
            // The stored type, as the AWS adapter answers it (octet-stream included).
            $metadata->mimeType === '' ? null : $metadata->mimeType,
            \array_filter($extra, static fn ($v) => $v !== '' && $v !== []),
        );
    }

    private function listedAttributes(ObjectEntry $object): StorageAttributes
    {
        $path = $this->prefixer->stripPrefix($object->key);
        if (\str_ends_with($path, '/')) {
            return new DirectoryAttributes(\rtrim($path, '/'), null, $object->lastModified);
        }
        $extra = \array_filter(['ETag' => $object->etag, 'StorageClass' => $object->storageClass], static fn ($v) => $v !== '');
        return new FileAttributes($path, $object->size, null, $object->lastModified, null, $extra);
    }

    /**
     * What a write asks for, from Flysystem's Config by the AWS adapter's option names.
     *
     * @param string|resource $contents
     * @return array{?string, array<string, string>, string, array<string, string>, WriteOptions}
     *
     * @throws UnableToWriteFile an option that cannot be honoured, named
     */
    private function writeOptions(string $path, $contents, Config $config): array
    {
        foreach (self::UNSUPPORTED_OPTIONS as $option) {
            if ($config->get($option) !== null) {
                throw UnableToWriteFile::atLocation($path, "the option $option is not supported by trio-s3rpc (its s3.* methods have no such field); remove it");
            }
        }
        $visibility = $config->get(Config::OPTION_VISIBILITY);
        $acl = $config->get('ACL');
        if ($acl !== null) {
            $visibility = match ($acl) {
                'public-read' => Visibility::PUBLIC,
                'private' => Visibility::PRIVATE,
                default => throw UnableToWriteFile::atLocation($path, "ACL '$acl' is not supported: use public-read or private (or the visibility option)"),
            };
        }
        $contentType = (string) $config->get('mimetype', $config->get('ContentType', ''));
        if ($contentType === '') {
            $sample = \is_string($contents) ? $contents : self::peek($contents);
            // As the AWS adapter: what Flysystem's detector cannot tell is stored as unknown
            // (octet-stream), not left to the server's own guess.
            $contentType = $this->mimeTypeDetector->detectMimeType($path, $sample) ?? 'application/octet-stream';
        }
        $headers = [];
        foreach (self::HEADER_OPTIONS as $awsName => $name) {
            $value = $config->get($name, $config->get($awsName));
            if ($value === null || $value === '') {
                continue;
            }
            if ($name === 'expires') {
                // Unix seconds on the wire; a DateTime or a date string is converted.
                $value = match (true) {
                    $value instanceof DateTimeInterface => $value->getTimestamp(),
                    \is_numeric($value) => (int) $value,
                    default => \strtotime((string) $value) ?: throw UnableToWriteFile::atLocation($path, "Expires: not a date: $value"),
                };
            }
            $headers[$name] = (string) $value;
        }
        /** @var array<string, string> $metadata */
        $metadata = (array) $config->get('Metadata', $config->get('metadata', []));
        $options = new WriteOptions(
            self::optionalString($config->get('StorageClass', $config->get('storage_class'))),
            self::optionalString($config->get('ServerSideEncryption', $config->get('sse'))),
            self::optionalString($config->get('SSEKMSKeyId', $config->get('sse_kms_key_id'))),
        );
        return [\is_string($visibility) ? $visibility : null, $metadata, $contentType, $headers, $options];
    }

    /** The first bytes of a stream, for the content-type detector, leaving the stream where it was. */
    private static function peek($stream): string
    {
        if (!\stream_get_meta_data($stream)['seekable']) {
            return '';
        }
        $position = \ftell($stream);
        $sample = (string) \fread($stream, 4096);
        \fseek($stream, (int) $position);
        return $sample;
    }

    /** A copy's visibility: the config's, else (acl mode, retain_visibility) the source's. */
    private function copyVisibility(string $source, Config $config): ?string
    {
        $visibility = $config->get(Config::OPTION_VISIBILITY);
        if ($visibility === null && $config->get(Config::OPTION_RETAIN_VISIBILITY, true) && $this->visibilityMode() === 'acl') {
            $visibility = $this->client->getMetadata($this->bucket, $this->prefixer->prefixPath($source))->visibility;
        }
        return \is_string($visibility) ? $visibility : null;
    }
}
