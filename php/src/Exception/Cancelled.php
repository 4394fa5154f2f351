<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** CANCELLED: The call was stopped by s3.Cancel. */
final class Cancelled extends RpcError
{
}
