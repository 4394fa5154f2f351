<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** PERMISSION_DENIED: The storage service refused access. */
final class PermissionDenied extends RpcError
{
}
