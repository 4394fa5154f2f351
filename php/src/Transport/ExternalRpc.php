<?php

declare(strict_types=1);

namespace TrioS3Rpc\Transport;

use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\InvalidArgument;
use TrioS3Rpc\Exception\RpcError;

/**
 * Any object with call(string $method, mixed $payload), such as RoadRunner's own
 * Spiral\Goridge\RPC\RPC, so an application can reuse the connection it already has.
 *
 * Its exceptions are mapped: Spiral's ServiceException text "Error 'CODE: message' on relay"
 * becomes the RpcError subclass of CODE; its relay and transport exceptions become
 * ConnectionFailed.
 *
 * reset() (after a broken connection) replaces the connection: with $reconnect, by the
 * object it returns (new RPC(Relay::create($address)) for Spiral); without, by closing the
 * relay inside $rpc (Spiral's SocketRelay opens a new socket at its next send). Spiral's
 * relay otherwise keeps its broken socket, and every later call fails with "Broken pipe".
 */
final class ExternalRpc implements Transport
{
    private object $rpc;
    /** @var (\Closure(): object)|null */
    private ?\Closure $reconnect;

    /**
     * @param object                 $rpc           the object whose call() sends the call
     * @param bool                   $bytesAsBase64 true for a JSON codec (Spiral's default), false for msgpack
     * @param (callable(): object)|null $reconnect  builds a new $rpc on a new connection
     */
    public function __construct(object $rpc, private readonly bool $bytesAsBase64 = true, ?callable $reconnect = null)
    {
        self::requireCall($rpc);
        $this->rpc = $rpc;
        $this->reconnect = $reconnect === null ? null : \Closure::fromCallable($reconnect);
    }

    public function bytesAsBase64(): bool
    {
        return $this->bytesAsBase64;
    }

    /** The object calls go to now (a new one after reset() with $reconnect). */
    public function rpc(): object
    {
        return $this->rpc;
    }

    public function reset(): void
    {
        if ($this->reconnect !== null) {
            $fresh = ($this->reconnect)();
            self::requireCall($fresh);
            $this->rpc = $fresh;
            return;
        }
        $relay = self::relayOf($this->rpc);
        if ($relay !== null && \method_exists($relay, 'close')) {
            try {
                $relay->close();
            } catch (\Throwable) {
                // Already closed: its next send connects anew either way.
            }
        }
    }

    /** Spiral's RPC keeps its relay in a private property "relay". */
    private static function relayOf(object $rpc): ?object
    {
        for ($class = new \ReflectionClass($rpc); $class !== false; $class = $class->getParentClass()) {
            if ($class->hasProperty('relay')) {
                $property = $class->getProperty('relay');
                $property->setAccessible(true);
                $relay = $property->isInitialized($rpc) ? $property->getValue($rpc) : null;
                return \is_object($relay) ? $relay : null;
            }
        }
        return null;
    }

    private static function requireCall(object $rpc): void
    {
        if (!\method_exists($rpc, 'call')) {
            throw new InvalidArgument(\get_class($rpc) . ' has no call(string $method, mixed $payload) method');
        }
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
