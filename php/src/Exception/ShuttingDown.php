<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** SHUTTING_DOWN: The server is stopping and did not start this call; another instance may. */
final class ShuttingDown extends RpcError
{
}
