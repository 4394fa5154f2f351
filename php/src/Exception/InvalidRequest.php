<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** INVALID_REQUEST: The argument cannot be decoded, or a field is missing or of the wrong type (the message names it). */
final class InvalidRequest extends RpcError
{
}
