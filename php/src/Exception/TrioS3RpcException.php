<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** Every exception this package throws on purpose implements this. */
interface TrioS3RpcException extends \Throwable
{
}
