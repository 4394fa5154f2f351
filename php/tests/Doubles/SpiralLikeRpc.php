<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Doubles;

/**
 * What Spiral\Goridge\RPC\RPC does with a connection, for tests without spiral/goridge
 * (not packaged by Debian): call() over a relay that opens its socket once and keeps it.
 * A broken socket stays broken (every call fails) until the relay's close(), after which
 * the next call connects anew: Spiral's SocketRelay behaves so. The relay is in a private
 * property "relay", as in Spiral's RPC. JSON codec, as Spiral's default.
 */
final class SpiralLikeRpc
{
    private SpiralLikeRelay $relay;
    private int $seq = 0;

    public function __construct(string $address)
    {
        $this->relay = new SpiralLikeRelay($address);
    }

    public function call(string $method, mixed $payload): mixed
    {
        $body = json_encode($payload, JSON_THROW_ON_ERROR);
        $seq = ++$this->seq;
        [$flags, $answer] = $this->relay->exchange($method, $body, $seq);
        if ($flags & 0x40) {
            throw new SpiralLikeServiceException("Error '$answer' on tcp");
        }
        return json_decode($answer, true, 512, JSON_THROW_ON_ERROR);
    }

    public function connections(): int
    {
        return $this->relay->connections;
    }
}
