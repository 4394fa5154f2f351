<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/**
 * OBJECT_CHANGED: the object was replaced since the version being read (an s3.Read with
 * if_match). readStream throws it instead of mixing the bytes of two versions; read the
 * object again from the start to get the new one.
 */
final class ObjectChanged extends RpcError
{
}
