<?php

declare(strict_types=1);

namespace TrioS3Rpc\Stream;

use TrioS3Rpc\Exception\InvalidArgument;

/**
 * What writeStream reads from: a PHP stream resource as it is, or a PSR-7 StreamInterface
 * (psr/http-message, where installed) copied in 1 MiB pieces into php://temp (memory
 * bounded: php://temp keeps 2 MiB in memory and the rest on disk), which is seekable, so
 * the upload can resume after a broken connection. The PSR-7 stream itself is left open.
 */
final class Psr7Source
{
    /**
     * @param mixed $stream
     * @return resource
     */
    public static function resource($stream)
    {
        if (\is_resource($stream)) {
            return $stream;
        }
        if (\is_object($stream) && \interface_exists('Psr\Http\Message\StreamInterface') && $stream instanceof \Psr\Http\Message\StreamInterface) {
            $copy = \fopen('php://temp', 'w+b');
            if ($copy === false) {
                throw new \RuntimeException('cannot open php://temp to copy the PSR-7 stream into');
            }
            while (!$stream->eof()) {
                $piece = $stream->read(1 << 20);
                if ($piece === '') {
                    break;
                }
                \fwrite($copy, $piece);
            }
            \rewind($copy);
            return $copy;
        }
        throw new InvalidArgument('writeStream needs an open stream resource or a PSR-7 StreamInterface, got ' . \get_debug_type($stream));
    }
}
