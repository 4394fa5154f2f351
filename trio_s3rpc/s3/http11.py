"""One HTTP/1.1 keep-alive connection: h11 for the protocol, the socket driven directly.

This is httpcore's ``AsyncHTTP11Connection`` (with the connecting part of
``AsyncHTTPConnection``) cut down to what S3 needs, because its per-request
machinery (a ``Trace`` context manager per phase, a state lock,
``map_exceptions`` and a ``fail_after`` scope around every read and write,
model objects re-validating headers already valid) and trio's stream layers
(every successful ``receive_some``/``send_all`` is a trip through the
scheduler) cost more CPU than the h11 cycle itself. ``python -m
benchmarks.http_connection`` compares the two; the README's Performance
section has the figures.

What stays exactly httpcore's, and ``tests/s3/test_http11.py`` holds it to
httpcore on the same requests against the same servers:

- the bytes on the wire: both hand h11 the same events. A small request's
  head and body leave in one write instead of two;
- the answers: status, headers as h11 parsed them (original case), the body
  framed by h11 (Content-Length, chunked, or read to the close);
- the errors, as httpcore's exception types: ``ConnectError`` and
  ``ConnectTimeout`` on connecting, ``ReadTimeout``/``WriteTimeout`` when a
  single wait on the socket outlasts its timeout (the timeout bounds each
  wait, not the request), ``ReadError``/``WriteError`` for a broken socket,
  ``RemoteProtocolError`` for an answer h11 refuses or a server that hangs
  up early, ``LocalProtocolError`` for a request h11 refuses, and
  ``ConnectionNotAvailable`` for a connection already in use or closed;
- keep-alive: after an answer read to its end, the connection is idle and
  reusable if both sides of h11 are DONE, else closed; an idle connection
  expires ``keepalive_expiry`` seconds after its last answer, or as soon as
  its socket turns readable (the server closed it); a write that fails while
  the request is sent still reads the answer the server may have sent;
- cancellation or any failure closes the connection.

TLS (``https``) runs over ``trio.SSLStream`` with the caller's SSL context
(httpx's), the server name checked as httpcore does. Plain HTTP skips trio's
stream layers: each read and write is first tried without waiting, and only a
socket that is not ready waits in ``trio.lowlevel.wait_readable``/
``wait_writable`` under that wait's own timeout; a run of reads that never
wait still yields to the scheduler every :data:`~trio_s3rpc.nbio.YIELD_EVERY` reads, so a
fast stream neither starves other tasks nor misses a cancellation.

Reads grow while they come back full: 64 KiB, doubling up to
:data:`MAX_READ_SIZE`, because h11 and this loop pay per read, not per byte.
"""

from __future__ import annotations

import contextlib
import enum
import select
import socket as stdlib_socket
import ssl
import time
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

import h11
import httpcore
import trio

from trio_s3rpc import nbio

READ_SIZE = 64 * 1024
MAX_READ_SIZE = 256 * 1024
# As httpcore: h11's limit on a response head, raised from its 16 KiB default.
MAX_INCOMPLETE_EVENT_SIZE = 100 * 1024
# A body at least this large is written by itself rather than copied behind
# the request head (the copy would cost more than the extra write).
JOIN_BELOW = 64 * 1024

_INFINITY = float("inf")


class State(enum.Enum):
    NEW = "new"
    ACTIVE = "active"
    IDLE = "idle"
    CLOSED = "closed"


def _readable(fd: int) -> bool:
    """Whether a read would return at once: on an idle connection, the server closed it
    (or, under TLS, sent something). A poll of the descriptor, as httpcore's
    ``is_socket_readable``; a closed one (-1) polls as readable."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _PlainIO:
    """A connected non-blocking TCP socket, each operation tried before it waits
    (:mod:`trio_s3rpc.nbio`), errors as httpcore's."""

    __slots__ = ("_receiver", "_sock")

    def __init__(self, sock: stdlib_socket.socket) -> None:
        self._sock = sock
        self._receiver = nbio.Receiver(sock)

    async def receive(
        self,
        max_bytes: int,
        timeout: float,  # noqa: ASYNC109
        wait_first: bool = False,
    ) -> bytes:
        """Up to ``max_bytes``; ``wait_first`` when nothing can be there yet (an answer
        to a request just sent), which saves a read that would fail."""
        try:
            return await self._receiver.receive_some(
                max_bytes, timeout=timeout, wait_first=wait_first
            )
        except trio.TooSlowError as exc:
            raise httpcore.ReadTimeout(str(exc)) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from None

    async def send(self, data: bytes | memoryview, timeout: float) -> None:  # noqa: ASYNC109
        try:
            await nbio.send_all(self._sock, data, timeout=timeout)
        except trio.TooSlowError as exc:
            raise httpcore.WriteTimeout(str(exc)) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from None

    def readable(self) -> bool:
        return _readable(self._sock.fileno())

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        await trio.lowlevel.checkpoint()


class _StreamIO:
    """A trio stream (TLS), each wait under its own timeout, errors as httpcore's."""

    __slots__ = ("_sock", "_stream")

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self._stream = stream
        self._sock = stream.transport_stream.socket

    async def receive(
        self,
        max_bytes: int,
        timeout: float,  # noqa: ASYNC109
        wait_first: bool = False,
    ) -> bytes:
        with trio.move_on_after(timeout) as waiting:
            try:
                return bytes(await self._stream.receive_some(max_bytes))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise httpcore.ReadError(str(exc) or type(exc).__name__) from None
        assert waiting.cancelled_caught
        raise httpcore.ReadTimeout(f"no data within {timeout} s")

    async def send(self, data: bytes | memoryview, timeout: float) -> None:  # noqa: ASYNC109
        with trio.move_on_after(timeout) as waiting:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise httpcore.WriteError(str(exc) or type(exc).__name__) from None
            return
        assert waiting.cancelled_caught
        raise httpcore.WriteTimeout(f"could not write within {timeout} s")

    def readable(self) -> bool:
        # TLS may hold decrypted bytes; the raw socket tells whether the server spoke or left.
        return _readable(self._sock.fileno())

    async def aclose(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await trio.aclose_forcefully(self._stream)


class Response:
    """An answer whose body (``stream``) is read as it arrives; what the pool hands out."""

    __slots__ = ("headers", "status", "stream")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], stream: Body) -> None:
        self.status = status
        self.headers = headers
        self.stream: Any = stream

    async def aread(self) -> bytes:
        try:
            return b"".join([chunk async for chunk in self.stream])
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self.stream.aclose()


class HTTP11Connection:
    """One connection to one origin, one request at a time (see the module docstring)."""

    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float | None = None,
    ) -> None:
        self.origin = origin
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._io: _PlainIO | _StreamIO | None = None
        self._h11 = h11.Connection(
            our_role=h11.CLIENT, max_incomplete_event_size=MAX_INCOMPLETE_EVENT_SIZE
        )
        self.state = State.NEW
        self._expire_at: float | None = None
        self._read_size = READ_SIZE

    def __repr__(self) -> str:
        scheme, host, port = self.origin
        return f"<HTTP11Connection {scheme.decode()}://{host.decode()}:{port} {self.state.value}>"

    # --- what the pool asks ---------------------------------------------

    def is_available(self) -> bool:
        return self.state in (State.NEW, State.IDLE)

    def is_idle(self) -> bool:
        return self.state is State.IDLE

    def is_closed(self) -> bool:
        return self.state is State.CLOSED

    def has_expired(self) -> bool:
        """Idle past its keep-alive expiry, or closed by the server meanwhile."""
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        return self.state is State.IDLE and self._io is not None and self._io.readable()

    # --- one request ----------------------------------------------------

    async def handle_async_request(self, request: httpcore.Request) -> Response:
        """httpcore's interface: the request's method, URL target, headers, stream, timeouts."""
        _, method, target, headers, body, timeouts = unpack(request)
        return await self.request(method, target, headers, body, timeouts)

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes],
        timeouts: Mapping[str, float | None],
    ) -> Response:
        """Send one request and read its answer's head; the body follows in ``stream``.

        ``body`` is the whole body or its chunks; the caller has set
        Content-Length (S3 wants no chunked uploads). Closing the answer's
        stream makes the connection idle again (body read to its end) or
        closes it.
        """
        if self.state is State.NEW:
            self.state = State.ACTIVE
            try:
                await self._connect(timeouts.get("connect"))
            except BaseException:
                await self.aclose()
                raise
        elif self.state is State.IDLE:
            self.state = State.ACTIVE
            self._expire_at = None
        else:
            raise httpcore.ConnectionNotAvailable()
        write_timeout = _seconds(timeouts.get("write"))
        read_timeout = _seconds(timeouts.get("read"))
        try:
            # As httpcore: the server may have answered (an error) and closed
            # before taking the whole body; a failed write still reads what it said.
            with contextlib.suppress(httpcore.WriteError):
                await self._send_request(method, target, headers, body, write_timeout)
            event = await self._next_event(read_timeout, answer_due=True)
            while not isinstance(event, h11.Response):
                # 1xx answers (100 Continue) precede the real one.
                event = await self._next_event(read_timeout)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.aclose()
            raise
        return Response(event.status_code, event.headers.raw_items(), Body(self, read_timeout))

    async def _connect(self, timeout: float | None) -> None:  # noqa: ASYNC109
        scheme, host, port = self.origin
        connect_timeout = _seconds(timeout)
        with trio.move_on_after(connect_timeout) as connecting:
            try:
                stream = await trio.open_tcp_stream(host.decode("ascii"), port)
            except OSError as exc:
                raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
            if scheme == b"https":
                context = self._ssl_context or ssl.create_default_context()
                tls = trio.SSLStream(stream, context, server_hostname=host.decode("ascii"))
                try:
                    await tls.do_handshake()
                except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
                    await trio.aclose_forcefully(tls)
                    raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
                self._io = _StreamIO(tls)
            else:
                # The socket itself, out of trio's stream: see the module docstring.
                self._io = _PlainIO(stdlib_socket.socket(fileno=stream.socket.detach()))
        if connecting.cancelled_caught:
            raise httpcore.ConnectTimeout(f"no connection within {connect_timeout} s")

    async def _send_request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes],
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        assert self._io is not None
        connection = self._h11
        try:
            head = connection.send(h11.Request(method=method, target=target, headers=headers))
        except h11.LocalProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from None
        assert head is not None
        if isinstance(body, bytes):
            if body and len(body) >= JOIN_BELOW:
                await self._io.send(head, timeout)
                head = b""
                await self._send_data(body, timeout)
            elif body:
                head += self._data(body)
            end = connection.send(h11.EndOfMessage())
            await self._io.send(head + end if end else head, timeout)
            return
        await self._io.send(head, timeout)
        async for chunk in body:
            await self._send_data(chunk, timeout)
        end = connection.send(h11.EndOfMessage())
        if end:
            await self._io.send(end, timeout)

    def _data(self, chunk: bytes) -> bytes:
        try:
            out = self._h11.send(h11.Data(data=chunk))
        except h11.LocalProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from None
        return out or b""

    async def _send_data(self, chunk: bytes, timeout: float) -> None:  # noqa: ASYNC109
        assert self._io is not None
        try:
            # h11 hands back the chunk itself (no copy) under Content-Length framing.
            pieces = self._h11.send_with_data_passthrough(h11.Data(data=chunk))
        except h11.LocalProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from None
        for piece in pieces or ():
            await self._io.send(piece, timeout)

    async def _next_event(self, timeout: float, answer_due: bool = False) -> Any:  # noqa: ASYNC109
        """The next h11 event, reading as needed; ``answer_due``: the request was just
        sent, so the first read waits for the socket before it tries."""
        connection = self._h11
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpcore.RemoteProtocolError(str(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            assert self._io is not None
            size = self._read_size
            data = await self._io.receive(size, timeout, answer_due)
            answer_due = False
            if len(data) == size:
                self._read_size = min(size * 2, MAX_READ_SIZE)
            elif size != READ_SIZE:
                self._read_size = READ_SIZE
            if not data and connection.their_state is h11.SEND_RESPONSE:
                raise httpcore.RemoteProtocolError(
                    "Server disconnected without sending a response."
                )
            connection.receive_data(data)

    async def _response_closed(self) -> None:
        connection = self._h11
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()
            self.state = State.IDLE
            if self._keepalive_expiry is not None:
                self._expire_at = time.monotonic() + self._keepalive_expiry
        else:
            with trio.CancelScope(shield=True):
                await self.aclose()

    async def aclose(self) -> None:
        self.state = State.CLOSED
        io, self._io = self._io, None
        if io is not None:
            await io.aclose()


class Body:
    """An answer's body as h11 frames it, as an async iterator of chunks; closing it
    ends the request on the connection (idle again, or closed)."""

    __slots__ = ("_closed", "_connection", "_done", "_timeout")

    def __init__(self, connection: HTTP11Connection, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout
        self._done = False
        self._closed = False

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        if self._done or self._closed:
            raise StopAsyncIteration
        try:
            event = await self._connection._next_event(self._timeout)
        except BaseException:
            await self.aclose()
            raise
        if type(event) is h11.Data:
            return bytes(event.data)
        # EndOfMessage (or PAUSED, which cannot follow a request of ours).
        self._done = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._connection._response_closed()


Origin = tuple[bytes, bytes, int]
"""(scheme, host, port)."""

_DEFAULT_PORTS = {b"http": 80, b"https": 443}


def unpack(
    request: httpcore.Request,
) -> tuple[
    Origin,
    bytes,
    bytes,
    list[tuple[bytes, bytes]],
    bytes | AsyncIterable[bytes],
    Mapping[str, float | None],
]:
    """An ``httpcore.Request`` as origin, method, target, headers, body, timeouts."""
    url = request.url
    origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80))
    stream = request.stream
    # httpcore keeps whole bodies in a stream that iterates both ways.
    body = b"".join(stream) if isinstance(stream, Iterable) else stream
    timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
    return origin, request.method, url.target, request.headers, body, timeouts


def _seconds(timeout: float | None) -> float:
    return _INFINITY if timeout is None else timeout
