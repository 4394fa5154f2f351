<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** BUCKET_NOT_FOUND: The named bucket is not registered on the server. */
final class BucketNotFound extends RpcError
{
}
