<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** INVALID_VISIBILITY: A visibility other than public or private, or one the bucket cannot set per object. */
final class InvalidVisibility extends RpcError
{
}
