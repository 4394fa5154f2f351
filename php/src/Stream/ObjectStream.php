<?php

declare(strict_types=1);

namespace TrioS3Rpc\Stream;

/**
 * The stream wrapper behind Client::readStream(): a readable, seekable PHP stream over a
 * RangeReader. Registered under the scheme "trio-s3rpc" on first use; the reader travels in
 * the stream context, so nothing is kept in global state.
 */
final class ObjectStream
{
    public const SCHEME = 'trio-s3rpc';

    /** @var resource|null set by PHP */
    public $context;
    private RangeReader $reader;
    private int $position = 0;

    /** @return resource */
    public static function open(RangeReader $reader)
    {
        if (!\in_array(self::SCHEME, \stream_get_wrappers(), true)) {
            \stream_wrapper_register(self::SCHEME, self::class);
        }
        $context = \stream_context_create([self::SCHEME => ['reader' => $reader]]);
        $stream = \fopen(self::SCHEME . '://' . \rawurlencode($reader->pathname), 'rb', false, $context);
        if ($stream === false) {
            throw new \RuntimeException("cannot open a stream of {$reader->pathname}");
        }
        return $stream;
    }

    public function stream_open(string $path, string $mode, int $options, ?string &$openedPath): bool
    {
        $reader = \stream_context_get_options($this->context)[self::SCHEME]['reader'] ?? null;
        if (!$reader instanceof RangeReader || !\str_contains($mode, 'r') || \strpbrk($mode, 'wax+') !== false) {
            return false;
        }
        $this->reader = $reader;
        return true;
    }

    public function stream_read(int $count): string
    {
        $bytes = $this->reader->bytesAt($this->position, $count);
        $this->position += \strlen($bytes);
        return $bytes;
    }

    public function stream_eof(): bool
    {
        return $this->position >= $this->reader->size;
    }

    public function stream_tell(): int
    {
        return $this->position;
    }

    public function stream_seek(int $offset, int $whence): bool
    {
        $target = match ($whence) {
            \SEEK_SET => $offset,
            \SEEK_CUR => $this->position + $offset,
            \SEEK_END => $this->reader->size + $offset,
            default => -1,
        };
        if ($target < 0) {
            return false;
        }
        $this->position = $target;
        return true;
    }

    /** @return array<string, int> */
    public function stream_stat(): array
    {
        return ['size' => $this->reader->size, 'mode' => 0100444, 'mtime' => $this->reader->lastModified];
    }

    public function stream_close(): void
    {
    }

    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        return false;
    }
}
