<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Doubles;

/** Named as Spiral's Spiral\Goridge\Exception\RelayException: ExternalRpc maps it by name. */
final class SpiralLikeRelayException extends \RuntimeException
{
}
