<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** OPERATION_TIMEOUT: The operation exceeded its time limit. */
final class OperationTimeout extends RpcError
{
}
