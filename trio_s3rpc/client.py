"""A trio Goridge RPC client, shared by the tests, the benchmarks and Python users.

It speaks exactly what PHP's ``spiral/goridge`` speaks: one call at a time per
connection, sequence numbers rising per client, JSON or msgpack arguments.
:class:`RPCPool` keeps several connections and one call in flight on each,
like PHP's ``MultiRPC``. Error answers raise :class:`RemoteError` carrying the
contract's code, parsed from the start of the message.

    async with await RPCClient.connect("tcp://127.0.0.1:6001") as rpc:
        answer = await rpc.call("s3.Exists", {"bucket": "uploads", "pathname": "a.txt"})
"""

from __future__ import annotations

import itertools
import socket as stdlib_socket
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import trio

from trio_s3rpc.goridge.codecs import decode_args, encode_result
from trio_s3rpc.goridge.frame import (
    CODEC_JSON,
    CODEC_MSGPACK,
    FLAG_ERROR,
    FrameDecoder,
    encode_rpc_request,
)

CODECS = {"json": CODEC_JSON, "msgpack": CODEC_MSGPACK}


class RemoteError(Exception):
    """The server answered with an error frame."""

    def __init__(self, method: str, text: str) -> None:
        super().__init__(text)
        self.method = method
        self.text = text
        code, sep, _ = text.partition(": ")
        self.code = code if sep and code.isupper() and " " not in code else ""


class ProtocolViolation(Exception):
    """The server's answer broke the Goridge contract the PHP client checks."""


async def open_stream(address: str) -> trio.SocketStream:
    """Connect to ``tcp://host:port`` or ``unix:///path``."""
    if address.startswith("unix://"):
        return await trio.open_unix_socket(address[len("unix://") :])
    if address.startswith("tcp://"):
        host, _, port = address[len("tcp://") :].rpartition(":")
        stream = await trio.open_tcp_stream(host.strip("[]") or "127.0.0.1", int(port))
        stream.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, True)
        return stream
    raise ValueError(f"address must start with tcp:// or unix://, got {address!r}")


class _Closing:
    """``async with`` closes it (``aclose``)."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class RPCClient(_Closing):
    """One connection, one call at a time (as PHP's ``RPC``)."""

    def __init__(self, stream: trio.SocketStream, codec: str = "json") -> None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
        self._stream = stream
        self._codec = CODECS[codec]
        self._decoder = FrameDecoder(max_payload=2**32 - 1)
        self._seq = itertools.count(1)
        self._lock = trio.Lock()
        self._broken = False

    @classmethod
    async def connect(cls, address: str, codec: str = "json") -> Self:
        return cls(await open_stream(address), codec)

    async def call(self, method: str, args: Mapping[str, Any] | list[Any] | None = None) -> Any:
        """Send one call and wait for its answer; raise RemoteError on an error answer."""
        if args is None or args == []:
            body = encode_result(self._codec, {}) if self._codec != CODEC_JSON else b"[]"
        else:
            assert isinstance(args, Mapping)
            body = encode_result(self._codec, args)
        async with self._lock:
            if self._broken:
                raise trio.BrokenResourceError(
                    "an earlier call on this connection was interrupted; open a new one"
                )
            seq = next(self._seq)
            try:
                await self._stream.send_all(encode_rpc_request(seq, method, self._codec, body))
                frame = await self._receive_frame()
            except BaseException:
                # Interrupted between request and answer: the next answer on the
                # wire would belong to this call, so the connection is unusable.
                self._broken = True
                raise
        if len(frame.options) != 2 or frame.options[0] != seq:
            raise ProtocolViolation(f"answer options {frame.options} do not match seq {seq}")
        method_length = frame.options[1]
        payload = frame.payload[method_length:]
        if frame.flags & FLAG_ERROR:
            raise RemoteError(method, bytes(payload).decode("utf-8", "replace"))
        return decode_args(frame.flags & ~FLAG_ERROR, bytes(payload)) if payload else {}

    async def _receive_frame(self) -> Any:
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return frame
            data = await self._stream.receive_some(256 * 1024)
            if not data:
                raise trio.BrokenResourceError("the server closed the connection")
            self._decoder.receive_data(data)

    async def aclose(self) -> None:
        await self._stream.aclose()


class RPCPool(_Closing):
    """Several connections with one call in flight on each (as PHP's ``MultiRPC``)."""

    def __init__(self, clients: list[RPCClient]) -> None:
        self._idle: list[RPCClient] = list(clients)
        self._all = list(clients)
        self._available = trio.Semaphore(len(clients))

    @classmethod
    async def connect(cls, address: str, size: int, codec: str = "json") -> Self:
        clients = [await RPCClient.connect(address, codec) for _ in range(size)]
        return cls(clients)

    async def call(self, method: str, args: Mapping[str, Any] | None = None) -> Any:
        async with self._available:
            client = self._idle.pop()
            try:
                return await client.call(method, args)
            finally:
                self._idle.append(client)

    async def aclose(self) -> None:
        for client in self._all:
            await client.aclose()
