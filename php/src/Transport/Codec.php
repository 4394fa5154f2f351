<?php

declare(strict_types=1);

namespace TrioS3Rpc\Transport;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\InvalidArgument;

/** The argument encodings Goridge offers that this server speaks. */
enum Codec: int
{
    case Json = 0x08;
    case Msgpack = 0x10;

    /** Content fields from this size on are sent and received without a copy (encodeParts, GoridgeTransport). */
    public const SPLICE_AT = 64 << 10;

    /** Msgpack when ext-msgpack is loaded, else JSON. */
    public static function best(): self
    {
        return \extension_loaded('msgpack') ? self::Msgpack : self::Json;
    }

    public function encode(mixed $payload): string
    {
        if ($this === self::Msgpack) {
            self::requireMsgpack();
            return \msgpack_pack($payload);
        }
        try {
            return \json_encode($payload, \JSON_THROW_ON_ERROR | \JSON_UNESCAPED_SLASHES | \JSON_UNESCAPED_UNICODE);
        } catch (\JsonException $e) {
            throw new InvalidArgument('the call argument cannot be encoded as JSON (text must be UTF-8): ' . $e->getMessage(), 0, $e);
        }
    }

    /**
     * The encoding of $payload as pieces to send one after another, so that a large
     * base64 field (JSON's "content") is sent as it is instead of being copied into
     * the encoded text: base64 needs no JSON escaping. A Base64 content stays a Base64
     * piece, whose text the transport makes as it sends it (Base64::pieces()). Their
     * concatenation (a Base64 as its text) is encode().
     *
     * @return list<string|Base64>
     */
    public function encodeParts(mixed $payload): array
    {
        $content = \is_array($payload) ? $payload['content'] ?? null : null;
        if (!\is_string($content) && !($content instanceof Base64 && $this === self::Json)) {
            return [$this->encode($payload)];
        }
        if ($this === self::Msgpack) {
            return self::msgpackParts($payload);
        }
        if ($content instanceof Base64) {
            // Its text is base64 by construction: nothing to check.
            if ($content->length() < self::SPLICE_AT) {
                return [$this->encode($payload)];
            }
        } elseif (\strlen($content) < self::SPLICE_AT || \preg_match('~\A[A-Za-z0-9+/]*+={0,2}\z~', $content) !== 1) {
            // preg_match, not strspn: PCRE's JIT scans 5 MiB in milliseconds, strspn in 300.
            // Anchored and possessive: one pass, no backtracking.
            return [$this->encode($payload)];
        }
        unset($payload['content']);
        $rest = $payload === [] ? '{' : \substr($this->encode((object) $payload), 0, -1) . ',';
        return [$rest . '"content":"', $content, '"}'];
    }

    /**
     * A msgpack map whose "content" (a str) is sent as it is after its header: the map
     * is packed entry by entry, as msgpack_pack() packs the whole.
     *
     * @param array<mixed> $payload
     * @return list<string>
     */
    private static function msgpackParts(array $payload): array
    {
        self::requireMsgpack();
        $content = $payload['content'];
        $length = \strlen($content);
        if ($length < self::SPLICE_AT) {
            return [\msgpack_pack($payload)];
        }
        unset($payload['content']);
        $entries = \count($payload) + 1;
        $head = $entries < 16 ? \chr(0x80 | $entries) : "\xde" . \pack('n', $entries);
        foreach ($payload as $key => $value) {
            $head .= \msgpack_pack((string) $key) . \msgpack_pack($value);
        }
        $head .= \msgpack_pack('content') . ($length < 0x10000 ? "\xda" . \pack('n', $length) : "\xdb" . \pack('N', $length));
        return [$head, $content];
    }

    public function decode(string $bytes): mixed
    {
        if ($this === self::Msgpack) {
            self::requireMsgpack();
            $value = @\msgpack_unpack($bytes);
            if ($value === false && $bytes !== "\xc2") {
                throw new ConnectionFailed('the server answered a msgpack payload that cannot be decoded');
            }
            return $value;
        }
        try {
            return \json_decode($bytes, true, 512, \JSON_THROW_ON_ERROR | \JSON_BIGINT_AS_STRING);
        } catch (\JsonException $e) {
            throw new ConnectionFailed('the server answered a JSON payload that cannot be decoded: ' . $e->getMessage(), 0, $e);
        }
    }

    private static function requireMsgpack(): void
    {
        if (!\extension_loaded('msgpack')) {
            throw new \LogicException('the msgpack codec needs ext-msgpack (apt install php-msgpack, or pecl install msgpack)');
        }
    }
}
