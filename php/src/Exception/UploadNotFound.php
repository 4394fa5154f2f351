<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** UPLOAD_NOT_FOUND: An upload id that is unknown, finished, aborted or expired. */
final class UploadNotFound extends RpcError
{
}
