<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** INVALID_PATHNAME: The pathname is empty, starts with "/", has a "." or ".." segment, or is otherwise not a valid key. */
final class InvalidPathname extends RpcError
{
}
