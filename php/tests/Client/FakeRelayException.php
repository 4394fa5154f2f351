<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Client;

/** Named like Spiral\Goridge\Exception\RelayException, which Spiral's relays throw. */
final class FakeRelayException extends \RuntimeException
{
}
