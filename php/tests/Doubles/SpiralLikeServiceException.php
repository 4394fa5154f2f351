<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Doubles;

/** As Spiral's ServiceException: "Error 'CODE: message (details)' on relay". */
final class SpiralLikeServiceException extends \RuntimeException
{
}
