<?php

declare(strict_types=1);

namespace TrioS3Rpc\Transport;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\RpcError;

/**
 * What the client needs from an RPC connection: one call at a time, and whether
 * binary fields travel as base64 (JSON) or as raw bytes (msgpack).
 */
interface Transport
{
    /**
     * @throws RpcError         the server answered an error
     * @throws ConnectionFailed the call could not be sent or its answer not received
     */
    public function call(string $method, mixed $payload): mixed;

    /** True when binary fields must be sent and are answered as base64 text. */
    public function bytesAsBase64(): bool;

    /** Drop the connection, if any, so that the next call opens a new one. */
    public function reset(): void;
}
