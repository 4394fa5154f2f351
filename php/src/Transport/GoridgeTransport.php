<?php

declare(strict_types=1);

namespace TrioS3Rpc\Transport;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\InvalidArgument;
use TrioS3Rpc\Exception\RpcError;

/**
 * Goridge RPC over a tcp:// or unix:// socket, written for this package (no dependency
 * beyond PHP). One call at a time per connection, as RoadRunner's own RPC client does.
 *
 * Frame: a 12-byte header (version 1 and header length in words, flags with the codec and
 * ERROR bits, payload length, CRC32 of the first six bytes), the options [seq, method length],
 * then the method name followed by the encoded argument. An error answer carries the UTF-8
 * text "CODE: message (details)" after the method name.
 *
 * The connection opens at the first call. Before each call an idle connection is checked:
 * one the server closed meanwhile (a restart, its idle timeout) is replaced by a new one,
 * so the call is not lost on it. Any failure to send or receive closes it and raises
 * ConnectionFailed; the next call opens a new one.
 */
final class GoridgeTransport implements Transport
{
    private const VERSION_AND_HEADER_WORDS = 0x15; // version 1, 5 words: 3 of header + 2 options
    private const FLAG_ERROR = 0x40;
    private const MAX_PAYLOAD = 0xFFFFFFFF;
    /** The largest piece of an argument copied to resume a write the socket took only part of. */
    private const SLICE = 64 << 10;
    /** How far into a large JSON answer its "content" member is looked for. */
    private const HEAD_SCAN = 8192;

    /** @var resource|null */
    private $socket = null;
    private int $seq = 0;

    /**
     * @param string $address        tcp://host:port or unix:///path/to.sock (RoadRunner's rpc.listen syntax)
     * @param float  $connectTimeout seconds to wait for the connection
     * @param float  $readTimeout    seconds to wait for an answer (a call may ask for longer); 0 waits forever
     */
    public function __construct(
        private readonly string $address,
        private readonly Codec $codec = Codec::Json,
        private readonly float $connectTimeout = 5.0,
        private readonly float $readTimeout = 30.0,
    ) {
        if (!\preg_match('~^(tcp://[^/]+:\d+|unix:///?.+)$~', $address)) {
            throw new InvalidArgument("address must be tcp://host:port or unix:///path, got '$address'");
        }
    }

    public function codec(): Codec
    {
        return $this->codec;
    }

    public function address(): string
    {
        return $this->address;
    }

    public function bytesAsBase64(): bool
    {
        return $this->codec === Codec::Json;
    }

    public function reset(): void
    {
        if ($this->socket !== null) {
            @\fclose($this->socket);
            $this->socket = null;
        }
    }

    public function __destruct()
    {
        $this->reset();
    }

    /**
     * @param float|null $timeout seconds to wait for this call's answer, when longer than the
     *                            transport's readTimeout (a call with a server-side timeout)
     *
     * @throws RpcError         the server answered an error
     * @throws ConnectionFailed the call could not be sent or its answer not received
     */
    public function call(string $method, mixed $payload, ?float $timeout = null): mixed
    {
        $parts = $this->codec->encodeParts($payload);
        unset($payload);
        $length = \strlen($method);
        foreach ($parts as $part) {
            $length += \is_string($part) ? \strlen($part) : $part->length();
        }
        if ($length > self::MAX_PAYLOAD) {
            throw new InvalidArgument("the call's payload of $length bytes exceeds Goridge's 4 GiB frame limit");
        }
        if ($this->socket !== null && !$this->idleAndOpen($this->socket)) {
            $this->reset();
        }
        $socket = $this->connect();
        $seq = ++$this->seq;
        $wait = $timeout !== null && $this->readTimeout > 0 && $timeout > $this->readTimeout ? $timeout : null;
        if ($wait !== null) {
            self::setTimeout($socket, $wait);
        }
        try {
            // Header and argument pieces are written apart so a large argument is never
            // copied once more; a Base64's text is written as it is made, a piece at a time.
            $this->send($socket, self::header($this->codec->value, $length, $seq, \strlen($method)) . $method);
            foreach ($parts as $index => $part) {
                if (\is_string($part)) {
                    $this->send($socket, $part);
                } else {
                    foreach ($part->pieces() as $piece) {
                        $this->send($socket, $piece);
                    }
                }
                unset($parts[$index], $part);
            }
            [$flags, $options, $answerLength] = $this->receiveHeader($socket);
            if ($options[0] !== $seq || $options[1] > $answerLength) {
                throw new ConnectionFailed(
                    "the answer from {$this->address} does not match the call (seq {$options[0]}, expected $seq)"
                );
            }
            // The method name apart from the result, so the result is not copied out of it.
            $this->receive($socket, $options[1]);
            $resultLength = $answerLength - $options[1];
            $answer = $result = null;
            if (!($flags & self::FLAG_ERROR) && $resultLength >= Codec::SPLICE_AT) {
                $answer = $this->codec === Codec::Json
                    ? $this->receiveJsonWithContent($socket, $resultLength)
                    : $this->receiveMsgpackWithContent($socket, $resultLength);
            } else {
                $result = $resultLength > 0 ? $this->receive($socket, $resultLength) : '';
            }
        } catch (ConnectionFailed $e) {
            $this->reset();
            throw $e;
        }
        if ($wait !== null) {
            self::setTimeout($socket, $this->readTimeout);
        }
        if ($result === null) {
            return $answer;
        }
        if ($flags & self::FLAG_ERROR) {
            throw RpcError::fromWireText($result);
        }
        return $this->codec->decode($result);
    }

    /**
     * A large JSON answer ending in a base64 "content" member (how the server answers
     * s3.Read: {"size":...,"etag":...,"content":"<base64>"}), decoded as json_decode would,
     * but with the content received as its own string and never passed through the JSON
     * parser, which takes far longer over megabytes of base64 than decoding the base64
     * itself, and would hold a second copy of it. Anything else is decoded whole.
     *
     * @param resource $socket
     */
    private function receiveJsonWithContent($socket, int $length): mixed
    {
        $marker = '"content":"';
        // Up to the marker or HEAD_SCAN bytes, whichever comes first: found when shorter.
        $head = @\stream_get_line($socket, self::HEAD_SCAN, $marker);
        if ($head === false) {
            throw $this->brokenWhileReceiving($socket);
        }
        if (\strlen($head) >= self::HEAD_SCAN) {
            return $this->codec->decode($head . $this->receive($socket, $length - \strlen($head)));
        }
        $after = $length - \strlen($head) - \strlen($marker);
        if ($after < 2) {
            return $this->codec->decode($head . $marker . ($after > 0 ? $this->receive($socket, $after) : ''));
        }
        $content = $this->receive($socket, $after - 2);
        $end = $this->receive($socket, 2);
        $rest = match (true) {
            $head === '{' => [],
            \str_ends_with($head, ',') => \json_decode(\substr($head, 0, -1) . '}', true, 512, \JSON_BIGINT_AS_STRING),
            default => null,
        };
        // The text between marker and end is the whole string value if it holds no quote
        // and no escape (two memchr scans; the client checks the base64 itself).
        if ($end !== '"}' || !\is_array($rest) || \str_contains($content, '"') || \str_contains($content, '\\')) {
            return $this->codec->decode($head . $marker . $content . $end);
        }
        $rest['content'] = $content;
        return $rest;
    }

    /**
     * A large msgpack answer whose first entry is "content" (how the server packs s3.Read's
     * answer: content, size, mime_type, last_modified, etag), decoded as msgpack_unpack
     * would, but with the content received as a string of its own: unpacking the whole
     * answer would copy the content out of it, and hold it twice. The header bytes are
     * received one field at a time, so none of the content is received with them. Anything
     * else is decoded whole.
     *
     * @param resource $socket
     */
    private function receiveMsgpackWithContent($socket, int $length): mixed
    {
        $head = $this->receive($socket, 1);
        if ($head === "\xde") {
            $head .= $this->receive($socket, 2);
            $entries = \unpack('n', $head, 1)[1];
        } elseif (\ord($head) > 0x80 && \ord($head) <= 0x8F) {
            $entries = \ord($head) & 0x0F;
        } else {
            return $this->codec->decode($head . $this->receive($socket, $length - 1));
        }
        $key = "\xa7content";
        $head .= $this->receive($socket, \strlen($key) + 1);
        // bin 8/16/32, or str 8/16/32 (PHP packs strings so): the format of its length.
        $format = ["\xc4" => 'C', "\xc5" => 'n', "\xc6" => 'N', "\xd9" => 'C', "\xda" => 'n', "\xdb" => 'N'][$head[-1]] ?? null;
        if ($format === null || \substr($head, -1 - \strlen($key), \strlen($key)) !== $key) {
            return $this->codec->decode($head . $this->receive($socket, $length - \strlen($head)));
        }
        $sizeBytes = ['C' => 1, 'n' => 2, 'N' => 4][$format];
        $size = $this->receive($socket, $sizeBytes);
        $head .= $size;
        $contentLength = \unpack($format, $size)[1];
        $after = $length - \strlen($head) - $contentLength;
        if ($after < 0) {
            return $this->codec->decode($head . $this->receive($socket, $length - \strlen($head)));
        }
        $content = $this->receive($socket, $contentLength);
        $tail = $after > 0 ? $this->receive($socket, $after) : '';
        // The other entries, as a map of their own (ext-msgpack unpacks an empty map as an object).
        $others = $entries - 1;
        $rest = $others === 0 && $tail === '' ? [] : @\msgpack_unpack(($others < 16 ? \chr(0x80 | $others) : "\xde" . \pack('n', $others)) . $tail);
        if (!\is_array($rest) || \count($rest) !== $others || \array_key_exists('content', $rest)) {
            return $this->codec->decode($head . $content . $tail);
        }
        return ['content' => $content] + $rest;
    }

    public static function header(int $codecFlag, int $payloadLength, int $seq, int $methodLength): string
    {
        $head = \pack('CCV', self::VERSION_AND_HEADER_WORDS, $codecFlag, $payloadLength);
        return $head . \pack('V', \crc32($head)) . "\0\0" . \pack('VV', $seq, $methodLength);
    }

    /**
     * Whether a connection between two calls is still usable: nothing may be readable on
     * it (the server sends only answers), so readable means closed (EOF) or out of step.
     *
     * @param resource $socket
     */
    private function idleAndOpen($socket): bool
    {
        $read = [$socket];
        $write = $except = null;
        $ready = @\stream_select($read, $write, $except, 0, 0);
        if ($ready === false) {
            return false;
        }
        return $ready === 0;
    }

    /** @param resource $socket */
    private static function setTimeout($socket, float $seconds): void
    {
        $whole = (int) $seconds;
        \stream_set_timeout($socket, $whole, (int) (($seconds - $whole) * 1e6));
    }

    /** @return resource */
    private function connect()
    {
        if ($this->socket !== null) {
            return $this->socket;
        }
        $errno = 0;
        $error = '';
        $socket = @\stream_socket_client($this->address, $errno, $error, $this->connectTimeout);
        if ($socket === false) {
            throw new ConnectionFailed(
                "cannot connect to {$this->address}: $error" . ($errno ? " (errno $errno)" : ''),
                callSent: false,
            );
        }
        if ($this->readTimeout > 0) {
            self::setTimeout($socket, $this->readTimeout);
        }
        if (\str_starts_with($this->address, 'tcp://') && \function_exists('socket_import_stream')) {
            $raw = @\socket_import_stream($socket);
            if ($raw !== false && $raw !== null) {
                @\socket_set_option($raw, \SOL_TCP, \TCP_NODELAY, 1);
            }
        }
        return $this->socket = $socket;
    }

    /** @param resource $socket */
    private function send($socket, string $bytes): void
    {
        $total = \strlen($bytes);
        if ($total === 0) {
            return;
        }
        // fwrite writes a string whole, waiting for the socket as it must; should it stop
        // short, the rest goes SLICE bytes at a time, so a resumed write copies little.
        $done = 0;
        $piece = $bytes;
        while (true) {
            $written = @\fwrite($socket, $piece);
            if ($written === false || $written === 0) {
                throw new ConnectionFailed("the connection to {$this->address} broke while sending a call");
            }
            $done += $written;
            if ($done >= $total) {
                return;
            }
            $piece = \substr($bytes, $done, self::SLICE);
        }
    }

    /**
     * @param resource $socket
     * @return array{int, array{int, int}, int} flags, options, payload length
     */
    private function receiveHeader($socket): array
    {
        $head = $this->receive($socket, 12);
        $first = \ord($head[0]);
        $words = $first & 0x0F;
        if ($first >> 4 !== 1 || $words < 3) {
            throw new ConnectionFailed("the answer from {$this->address} is not a Goridge frame");
        }
        /** @var array{flags: int, length: int, crc: int} $fields */
        $fields = \unpack('Cversion/Cflags/Vlength/Vcrc', $head);
        if (\crc32(\substr($head, 0, 6)) !== $fields['crc']) {
            throw new ConnectionFailed("the answer from {$this->address} has a bad header checksum");
        }
        if ($words !== 5) {
            throw new ConnectionFailed("the answer from {$this->address} has " . ($words - 3) . ' options, not 2');
        }
        /** @var array{1: int, 2: int} $options */
        $options = \unpack('V2', $this->receive($socket, 8));
        return [$fields['flags'], [$options[1], $options[2]], $fields['length']];
    }

    /** @param resource $socket */
    private function receive($socket, int $length): string
    {
        $data = @\stream_get_contents($socket, $length);
        if ($data === false || \strlen($data) !== $length) {
            throw $this->brokenWhileReceiving($socket);
        }
        return $data;
    }

    /** @param resource $socket */
    private function brokenWhileReceiving($socket): ConnectionFailed
    {
        $meta = \stream_get_meta_data($socket);
        $why = $meta['timed_out'] ? "no answer within {$this->readTimeout} s" : 'the connection closed';
        return new ConnectionFailed("the connection to {$this->address} broke while receiving an answer: $why");
    }
}
