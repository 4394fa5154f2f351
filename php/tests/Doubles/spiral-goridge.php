<?php

declare(strict_types=1);

/*
 * Stand-ins for the classes of spiral/goridge (v4) that the READMEs name:
 * Spiral\Goridge\Relay::create(), Spiral\Goridge\RPC\RPC (call, withCodec),
 * Spiral\Goridge\RPC\MultiRPC (create, call, callAsync, hasResponse, getResponse),
 * Spiral\Goridge\RPC\Codec\MsgpackCodec and JsonCodec, and the exceptions a caller catches
 * (Spiral\Goridge\RPC\Exception\ServiceException, Spiral\Goridge\Exception\RelayException
 * and its TransportException), with Spiral's hierarchy and message texts ("Error 'CODE:
 * message (details)' on tcp://host:port"). They speak the same Goridge frames over the same
 * kind of relay (SpiralLikeRelay: one socket, kept until close()). spiral/goridge is not
 * packaged by Debian and Packagist is not reachable from CI; the README's blocks that use
 * Spiral run against these. Loaded only by tests/scripts/readme-block.php, and only where
 * the real classes are absent.
 */

namespace Spiral\Goridge\Exception {
    if (!class_exists(GoridgeException::class, false)) {
        class GoridgeException extends \RuntimeException
        {
        }

        class RelayException extends GoridgeException
        {
        }

        class TransportException extends RelayException
        {
        }
    }
}

namespace Spiral\Goridge\RPC\Exception {
    use Spiral\Goridge\Exception\GoridgeException;

    if (!class_exists(RPCException::class, false)) {
        class RPCException extends GoridgeException
        {
        }

        class ServiceException extends RPCException
        {
        }
    }
}

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
    use Spiral\Goridge\Exception\TransportException;
    use Spiral\Goridge\Relay;
    use Spiral\Goridge\RPC\Codec\JsonCodec;
    use Spiral\Goridge\RPC\Exception\RPCException;
    use Spiral\Goridge\RPC\Exception\ServiceException;
    use TrioS3Rpc\Tests\Doubles\SpiralLikeRelay;
    use TrioS3Rpc\Tests\Doubles\SpiralLikeRelayException;

    if (!class_exists(RPC::class, false)) {
        /** What RPC and MultiRPC share: frames out, answers decoded, errors as Spiral's. */
        abstract class StandInRpc
        {
            protected static int $seq = 0;
            protected object $codec;

            public function withCodec(object $codec): static
            {
                $rpc = clone $this;
                $rpc->codec = $codec;
                return $rpc;
            }

            protected function send(SpiralLikeRelay $relay, string $method, mixed $payload): int
            {
                $seq = ++self::$seq;
                try {
                    $relay->send($method, $this->codec->encode($payload), $seq, $this->codec::FLAG);
                } catch (SpiralLikeRelayException $e) {
                    throw new TransportException($e->getMessage(), 0, $e);
                }
                return $seq;
            }

            protected function receive(SpiralLikeRelay $relay): mixed
            {
                try {
                    [$flags, $answer] = $relay->receive();
                } catch (SpiralLikeRelayException $e) {
                    throw new TransportException($e->getMessage(), 0, $e);
                }
                if ($flags & 0x40) {
                    throw new ServiceException(sprintf("Error '%s' on %s", $answer, $relay));
                }
                return $this->codec->decode($answer);
            }
        }

        final class RPC extends StandInRpc
        {
            public function __construct(private SpiralLikeRelay $relay, ?object $codec = null)
            {
                $this->codec = $codec ?? new JsonCodec();
            }

            public function call(string $method, mixed $payload): mixed
            {
                $this->send($this->relay, $method, $payload);
                return $this->receive($this->relay);
            }
        }

        /** As Spiral's: $count relays, a call or an async call takes a free one. */
        final class MultiRPC extends StandInRpc
        {
            /** @var list<SpiralLikeRelay> */
            private array $free = [];
            /** @var array<int, SpiralLikeRelay> */
            private array $pending = [];

            /** @param list<SpiralLikeRelay> $relays */
            public function __construct(array $relays, ?object $codec = null)
            {
                $this->free = $relays;
                $this->codec = $codec ?? new JsonCodec();
            }

            public static function create(string $connection, int $count = 50): self
            {
                return new self(array_map(static fn () => Relay::create($connection), range(1, $count)));
            }

            public function call(string $method, mixed $payload): mixed
            {
                $relay = $this->take();
                try {
                    $this->send($relay, $method, $payload);
                    return $this->receive($relay);
                } finally {
                    $this->free[] = $relay;
                }
            }

            public function callAsync(string $method, mixed $payload): int
            {
                $relay = $this->take();
                $seq = $this->send($relay, $method, $payload);
                $this->pending[$seq] = $relay;
                return $seq;
            }

            public function hasResponse(int $seq): bool
            {
                return $this->relayOf($seq)->hasFrame();
            }

            public function getResponse(int $seq): mixed
            {
                $relay = $this->relayOf($seq);
                unset($this->pending[$seq]);
                $this->free[] = $relay;
                return $this->receive($relay);
            }

            private function take(): SpiralLikeRelay
            {
                return array_pop($this->free) ?? throw new RPCException('No relays available at all');
            }

            private function relayOf(int $seq): SpiralLikeRelay
            {
                return $this->pending[$seq] ?? throw new RPCException('Invalid sequence number. This may occur if the number was already used, the buffers were flushed due to insufficient getResponse calling, or with a plain inconsistent number.');
            }
        }
    }
}
