<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** An error answer whose code this version of the client does not know (a newer server). */
final class UnknownError extends RpcError
{
}
