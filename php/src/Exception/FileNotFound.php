<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** FILE_NOT_FOUND: The object does not exist. */
final class FileNotFound extends RpcError
{
}
