<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** INTERNAL_ERROR: A server bug; the details carry an id that the server's log also has. */
final class InternalError extends RpcError
{
}
