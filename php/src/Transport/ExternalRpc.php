<?php

declare(strict_types=1);

namespace TrioS3Rpc\Transport;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\RpcError;

/**
 * Any object with call(string $method, mixed $payload), such as RoadRunner's own
 * Spiral\Goridge\RPC\RPC, so an application can reuse the connection it already has.
 *
 * Its exceptions are mapped: Spiral's ServiceException text "Error 'CODE: message' on relay"
 * becomes the RpcError subclass of CODE; its relay and transport exceptions become
 * ConnectionFailed.
 */
final class ExternalRpc implements Transport
{
    /**
     * @param object $rpc           the object whose call() sends the call
     * @param bool   $bytesAsBase64 true for a JSON codec (Spiral's default), false for msgpack
     */
    public function __construct(private readonly object $rpc, private readonly bool $bytesAsBase64 = true)
    {
        if (!\method_exists($rpc, 'call')) {
            throw new \InvalidArgumentException(\get_class($rpc) . ' has no call(string $method, mixed $payload) method');
        }
    }

    public function bytesAsBase64(): bool
    {
        return $this->bytesAsBase64;
    }

    public function reset(): void
    {
        // The application owns that connection and how it reconnects.
    }

    public function call(string $method, mixed $payload): mixed
    {
        try {
            return $this->rpc->call($method, $payload);
        } catch (RpcError | ConnectionFailed $e) {
            throw $e;
        } catch (\Throwable $e) {
            if (\preg_match("~^Error '(.*)' on .*$~s", $e->getMessage(), $m)) {
                throw RpcError::fromWireText($m[1], $e);
            }
            // Spiral's RelayException, TransportException and their GoridgeException base:
            // the call did not make it there and back.
            foreach ([\get_class($e), ...\array_values(\class_parents($e) ?: [])] as $class) {
                if (\preg_match('~(Relay|Transport|Goridge)Exception$~', $class)) {
                    throw new ConnectionFailed($e->getMessage(), 0, $e);
                }
            }
            throw $e;
        }
    }
}
