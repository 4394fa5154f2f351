"""The byte stream under one HTTP/1.1 connection: a TCP socket, or TLS over one.

This is the part of httpcore's ``_backends/trio.py`` that S3 needs, so that
:mod:`trio_s3rpc.s3.http11` (the protocol) never touches a socket. Both
streams read and write bytes under a timeout that bounds each wait (not the
whole request) and fail with trio's exceptions, as its streams raise them:
``trio.TooSlowError`` when a wait outlasts its timeout,
``trio.BrokenResourceError`` or ``OSError`` for a broken connection,
``ssl.SSLError`` for a refused handshake. :mod:`trio_s3rpc.s3.exceptions`
turns them into httpcore's, in one table.

Plain HTTP skips trio's stream layers: every successful ``receive_some`` or
``send_all`` of theirs is a trip through the scheduler, so the socket is taken
out of trio's stream and read and written through :mod:`trio_s3rpc.nbio`
(tried first, waiting only when it is not ready). TLS runs over
``trio.SSLStream`` with the caller's SSL context (httpx's) and, as httpcore
has it, ``https_compatible=True``: a server that closes the connection
without TLS's close_notify ends the stream rather than breaking it, as HTTPS
servers commonly do.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket as stdlib_socket
import ssl

import trio

from trio_s3rpc import nbio


class PlainStream:
    """A connected non-blocking TCP socket, each operation tried before it waits."""

    __slots__ = ("_receiver", "_sock")

    def __init__(self, sock: stdlib_socket.socket) -> None:
        self._sock = sock
        self._receiver = nbio.Receiver(sock)

    async def receive(self, max_bytes: int, timeout: float, wait_first: bool = False) -> bytes:  # noqa: ASYNC109
        """Up to ``max_bytes``, ``b""`` at the end; ``wait_first`` when nothing can be
        there yet (an answer to a request just sent), which saves a read that would fail."""
        return await self._receiver.receive_some(max_bytes, timeout=timeout, wait_first=wait_first)

    async def send(self, data: bytes | memoryview, timeout: float) -> None:  # noqa: ASYNC109
        await nbio.send_all(self._sock, data, timeout=timeout)

    def readable(self) -> bool:
        return _readable(self._sock.fileno())

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        await trio.lowlevel.checkpoint()


class TLSStream:
    """TLS over a trio socket stream, each wait under its own timeout."""

    __slots__ = ("_sock", "_stream")

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self._stream = stream
        self._sock = stream.transport_stream.socket

    async def receive(self, max_bytes: int, timeout: float, wait_first: bool = False) -> bytes:  # noqa: ASYNC109
        with trio.move_on_after(timeout) as waiting:
            return bytes(await self._stream.receive_some(max_bytes))
        assert waiting.cancelled_caught
        raise trio.TooSlowError(f"no data within {timeout} s")

    async def send(self, data: bytes | memoryview, timeout: float) -> None:  # noqa: ASYNC109
        with trio.move_on_after(timeout) as waiting:
            await self._stream.send_all(data)
            return
        assert waiting.cancelled_caught
        raise trio.TooSlowError(f"could not write within {timeout} s")

    def readable(self) -> bool:
        # TLS may hold decrypted bytes; the raw socket tells whether the server spoke or left.
        return _readable(self._sock.fileno())

    async def aclose(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await trio.aclose_forcefully(self._stream)


NetworkStream = PlainStream | TLSStream


async def connect(
    scheme: bytes,
    host: bytes,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    timeout: float = math.inf,  # noqa: ASYNC109
) -> NetworkStream:
    """A stream to ``host:port``, TLS for ``https`` (the server name checked as httpcore
    does); ``timeout`` bounds the connecting and the handshake together."""
    hostname = host.decode("ascii")
    with trio.move_on_after(timeout) as connecting:
        stream = await trio.open_tcp_stream(hostname, port)
        if scheme != b"https":
            return PlainStream(stdlib_socket.socket(fileno=stream.socket.detach()))
        context = ssl_context or ssl.create_default_context()
        tls = trio.SSLStream(stream, context, server_hostname=hostname, https_compatible=True)
        try:
            await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tls)
            raise
        return TLSStream(tls)
    assert connecting.cancelled_caught
    raise trio.TooSlowError(f"no connection within {timeout} s")


def _readable(fd: int) -> bool:
    """Whether a read would return at once: on an idle connection, the server closed it
    (or, under TLS, sent something). A poll of the descriptor, as httpcore's
    ``is_socket_readable``; a closed one (-1) polls as readable."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
