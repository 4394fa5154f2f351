<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** INVALID_CONFIG: The configuration, or a RegisterBucket request, is invalid. */
final class InvalidConfig extends RpcError
{
}
