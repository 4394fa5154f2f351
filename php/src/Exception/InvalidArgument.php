<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/**
 * A call refused by the client before anything was sent: an argument the server would
 * refuse, or that the client cannot send (a header name it does not know, text that is
 * not UTF-8 under JSON). An \InvalidArgumentException, as before, and a TrioS3RpcException.
 */
final class InvalidArgument extends \InvalidArgumentException implements TrioS3RpcException
{
}
