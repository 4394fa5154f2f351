<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** METHOD_NOT_FOUND: No such method on the server. */
final class MethodNotFound extends RpcError
{
}
