<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** BUCKET_ALREADY_EXISTS: RegisterBucket with a name already registered. */
final class BucketAlreadyExists extends RpcError
{
}
