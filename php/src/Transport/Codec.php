<?php

declare(strict_types=1);

namespace TrioS3Rpc\Transport;

use TrioS3Rpc\Exception\ConnectionFailed;

/** The argument encodings Goridge offers that this server speaks. */
enum Codec: int
{
    case Json = 0x08;
    case Msgpack = 0x10;

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
            throw new \InvalidArgumentException('the call argument cannot be encoded as JSON: ' . $e->getMessage(), 0, $e);
        }
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
