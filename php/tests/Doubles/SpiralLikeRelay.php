<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Doubles;

use TrioS3Rpc\Transport\GoridgeTransport;

/** The relay of SpiralLikeRpc: one socket, kept until close(), as Spiral's SocketRelay. */
final class SpiralLikeRelay
{
    /** @var resource|null */
    private $socket = null;
    public int $connections = 0;

    public function __construct(private readonly string $address)
    {
    }

    /** @return array{int, string} flags and the answer after the method name */
    public function exchange(string $method, string $body, int $seq, int $codecFlag = 0x08): array
    {
        $this->send($method, $body, $seq, $codecFlag);
        return $this->receive();
    }

    /** Sends one call frame, connecting first when no socket is open. */
    public function send(string $method, string $body, int $seq, int $codecFlag = 0x08): void
    {
        if ($this->socket === null) {
            $socket = @stream_socket_client($this->address, $errno, $error, 5.0);
            if ($socket === false) {
                throw new SpiralLikeRelayException("unable to connect to {$this->address}: $error");
            }
            stream_set_timeout($socket, 30);
            $this->socket = $socket;
            $this->connections++;
        }
        $frame = GoridgeTransport::header($codecFlag, strlen($method) + strlen($body), $seq, strlen($method)) . $method . $body;
        if (@fwrite($this->socket, $frame) !== strlen($frame)) {
            throw new SpiralLikeRelayException('socket_send(): Broken pipe');
        }
    }

    /**
     * Reads one answer frame (blocking).
     *
     * @return array{int, string} flags and the answer after the method name
     */
    public function receive(): array
    {
        $head = $this->socket === null ? false : @stream_get_contents($this->socket, 20);
        if ($head === false || strlen($head) !== 20) {
            throw new SpiralLikeRelayException('unable to read prefix from socket: the connection closed');
        }
        $fields = unpack('Cversion/Cflags/Vlength/Vcrc/vpad/Vseq/Vmethod', $head);
        $payload = $fields['length'] > 0 ? (string) stream_get_contents($this->socket, $fields['length']) : '';
        return [$fields['flags'], substr($payload, $fields['method'])];
    }

    /** Whether an answer has begun to arrive, without waiting (Spiral's SocketRelay::hasFrame). */
    public function hasFrame(): bool
    {
        if ($this->socket === null) {
            return false;
        }
        $read = [$this->socket];
        $write = $except = null;
        return stream_select($read, $write, $except, 0) > 0;
    }

    /** The address, as Spiral's SocketRelay names itself in ServiceException texts. */
    public function __toString(): string
    {
        return $this->address;
    }

    public function close(): void
    {
        if ($this->socket === null) {
            throw new SpiralLikeRelayException('unable to close socket, socket already closed');
        }
        fclose($this->socket);
        $this->socket = null;
    }
}
