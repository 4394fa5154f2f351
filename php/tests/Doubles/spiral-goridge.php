<?php

declare(strict_types=1);

/*
 * Stand-ins for the three classes of spiral/goridge (v3/v4) that php/README.md names:
 * Spiral\Goridge\Relay::create(), Spiral\Goridge\RPC\RPC (call, withCodec) and
 * Spiral\Goridge\RPC\Codec\MsgpackCodec, speaking the same Goridge frames over the same
 * kind of relay (SpiralLikeRelay: one socket, kept until close()). spiral/goridge is not
 * packaged by Debian and Packagist is not reachable from CI; the README's blocks that use
 * Spiral run against these. Loaded only by tests/scripts/readme-block.php, and only where
 * the real classes are absent.
 */

namespace Spiral\Goridge {
    use TrioS3Rpc\Tests\Doubles\SpiralLikeRelay;

    if (!class_exists(Relay::class, false)) {
        abstract class Relay
        {
            public static function create(string $connection): SpiralLikeRelay
            {
                return new SpiralLikeRelay($connection);
            }
        }
    }
}

namespace Spiral\Goridge\RPC\Codec {
    if (!class_exists(MsgpackCodec::class, false)) {
        final class MsgpackCodec
        {
            public const FLAG = 0x10;

            public function encode(mixed $payload): string
            {
                return msgpack_pack($payload);
            }

            public function decode(string $payload): mixed
            {
                return msgpack_unpack($payload);
            }
        }

        final class JsonCodec
        {
            public const FLAG = 0x08;

            public function encode(mixed $payload): string
            {
                return json_encode($payload, JSON_THROW_ON_ERROR);
            }

            public function decode(string $payload): mixed
            {
                return json_decode($payload, true, 512, JSON_THROW_ON_ERROR);
            }
        }
    }
}

namespace Spiral\Goridge\RPC {
    use Spiral\Goridge\RPC\Codec\JsonCodec;
    use TrioS3Rpc\Tests\Doubles\SpiralLikeRelay;
    use TrioS3Rpc\Tests\Doubles\SpiralLikeServiceException;

    if (!class_exists(RPC::class, false)) {
        final class RPC
        {
            private static int $seq = 0;
            private object $codec;

            public function __construct(private SpiralLikeRelay $relay, ?object $codec = null)
            {
                $this->codec = $codec ?? new JsonCodec();
            }

            public function withCodec(object $codec): self
            {
                $rpc = clone $this;
                $rpc->codec = $codec;
                return $rpc;
            }

            public function call(string $method, mixed $payload): mixed
            {
                [$flags, $answer] = $this->relay->exchange($method, $this->codec->encode($payload), ++self::$seq, $this->codec::FLAG);
                if ($flags & 0x40) {
                    throw new SpiralLikeServiceException("Error '$answer' on tcp");
                }
                return $this->codec->decode($answer);
            }
        }
    }
}
