<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** S3_OPERATION_FAILED: The storage service failed the request (the message says which operation and why). */
final class S3OperationFailed extends RpcError
{
}
