<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/**
 * The call could not be sent or its answer not received: the server is unreachable, the
 * connection broke, timed out, or answered something that is not a valid Goridge frame.
 * Unless $callSent is false (the connection could not be opened), the call may or may not
 * have run on the server.
 */
final class ConnectionFailed extends \RuntimeException implements TrioS3RpcException
{
    public function __construct(
        string $message = '',
        int $code = 0,
        ?\Throwable $previous = null,
        public readonly bool $callSent = true,
    ) {
        parent::__construct($message, $code, $previous);
    }
}
