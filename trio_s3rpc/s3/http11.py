"""One HTTP/1.1 keep-alive connection: h11's state machine over a byte stream.

This is httpcore's ``AsyncHTTP11Connection`` (with the connecting part of
``AsyncHTTPConnection``) cut down to what S3 needs, because its per-request
machinery (a ``Trace`` context manager per phase, a state lock, a
``fail_after`` scope around every read and write, model objects
re-validating headers already valid) and trio's stream layers cost more CPU
than the h11 cycle itself. ``python -m benchmarks.http_connection`` compares
the two; the README's Performance section has the figures. As httpcore
splits ``_async/http11.py`` from ``_backends/trio.py``, this module speaks
the protocol and :mod:`trio_s3rpc.s3.stream` moves the bytes (a socket tried
before it waits, or TLS); :mod:`trio_s3rpc.s3.exceptions` maps the failures
of both into httpcore's types where this module calls them.

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

Reads grow while they come back full: 64 KiB, doubling up to
:data:`MAX_READ_SIZE`, because h11 and this loop pay per read, not per byte.

A request with a whole body whose head is in HTTP/1.1's plain form (see
:mod:`trio_s3rpc.s3.plain`: what S3 is sent and answers, nearly always) is
written, and its answer read and framed by its Content-Length, without h11:
h11's per-event work was about a third of the instructions of a small S3
request. An answer in any other form (chunked, read to the close, 1xx,
anything odd) is handed to h11 with the request replayed into it first, so
that h11 reads, refuses or frames it exactly as before; the tests above hold
both paths to httpcore.
"""

from __future__ import annotations

import contextlib
import enum
import ssl
import time
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

import h11
import httpcore
import trio

from trio_s3rpc.s3.exceptions import CONNECTING, READING, WRITING
from trio_s3rpc.s3.plain import MAX_HEAD_SIZE, NOT_PLAIN, Head, parse_head, request_head
from trio_s3rpc.s3.stream import NetworkStream, connect

READ_SIZE = 64 * 1024
MAX_READ_SIZE = 256 * 1024
# As httpcore: h11's limit on a response head, raised from its 16 KiB default.
MAX_INCOMPLETE_EVENT_SIZE = MAX_HEAD_SIZE
# A body at least this large is written by itself rather than copied behind
# the request head (the copy would cost more than the extra write).
JOIN_BELOW = 64 * 1024

_INFINITY = float("inf")


class State(enum.Enum):
    NEW = "new"
    ACTIVE = "active"
    IDLE = "idle"
    CLOSED = "closed"


class Response:
    """An answer whose body (``stream``) is read as it arrives; what the pool hands out."""

    __slots__ = ("headers", "status", "stream")

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], stream: Body | PlainBody
    ) -> None:
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
        self._io: NetworkStream | None = None
        self._h11 = h11.Connection(
            our_role=h11.CLIENT, max_incomplete_event_size=MAX_INCOMPLETE_EVENT_SIZE
        )
        self.state = State.NEW
        self._expire_at: float | None = None
        self._read_size = READ_SIZE
        # Bytes the server sent beyond an answer read without h11: as h11 keeps them
        # in its buffer, they are where the next answer is read from.
        self._leftover = b""
        # h11 holds bytes beyond its last answer: the next exchange is h11's too.
        self._h11_holds_data = False

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
            if isinstance(body, bytes) and not self._h11_holds_data:
                plain = request_head(method, target, headers, len(body))
                if plain is not None:
                    return await self._plain_exchange(
                        method, target, headers, body, plain, write_timeout, read_timeout
                    )
            with WRITING:  # a request h11 refuses: LocalProtocolError
                head = h11.Request(method=method, target=target, headers=headers)
            # As httpcore: the server may have answered (an error) and closed
            # before taking the whole body; a failed write still reads what it said.
            with contextlib.suppress(httpcore.WriteError):
                await self._send_request(head, body, write_timeout)
            leftover, self._leftover = self._leftover, b""
            if leftover:
                self._h11.receive_data(leftover)
            return await self._h11_answer(read_timeout, answer_due=not leftover)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def _h11_answer(self, read_timeout: float, answer_due: bool = False) -> Response:
        event = await self._next_event(read_timeout, answer_due)
        while not isinstance(event, h11.Response):
            # 1xx answers (100 Continue) precede the real one.
            event = await self._next_event(read_timeout)
        return Response(event.status_code, event.headers.raw_items(), Body(self, read_timeout))

    async def _plain_exchange(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        head: bytes,
        write_timeout: float,
        read_timeout: float,
    ) -> Response:
        """A request in the plain form (:mod:`trio_s3rpc.s3.plain`), sent and its answer
        read without h11; an answer not in that form is handed to h11 with the request
        replayed into it, as if h11 had carried the exchange from the start."""
        io = self._io
        assert io is not None
        sent = False
        with contextlib.suppress(httpcore.WriteError), WRITING:
            if len(body) >= JOIN_BELOW:
                await io.send(head, write_timeout)
                await io.send(body, write_timeout)
            else:
                await io.send(head + body if body else head, write_timeout)
            sent = True
        buffer, self._leftover = self._leftover, b""
        answer_due = not buffer
        parsed = parse_head(buffer, method) if buffer else None
        with READING:
            while parsed is None:
                data = await self._receive(read_timeout, answer_due=answer_due)
                answer_due = False
                if not data:
                    raise httpcore.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                buffer = buffer + data if buffer else data
                parsed = parse_head(buffer, method)
        if isinstance(parsed, Head):
            rest = buffer[parsed.size :]
            return Response(
                parsed.status,
                parsed.headers,
                PlainBody(self, rest, parsed.length, parsed.keep_alive and sent, read_timeout),
            )
        assert parsed is NOT_PLAIN
        connection = self._h11
        with WRITING:
            connection.send(h11.Request(method=method, target=target, headers=headers))
            if sent:
                if body:
                    connection.send(h11.Data(data=body))
                connection.send(h11.EndOfMessage())
        connection.receive_data(buffer)
        return await self._h11_answer(read_timeout)

    async def _connect(self, timeout: float | None) -> None:  # noqa: ASYNC109
        scheme, host, port = self.origin
        with CONNECTING:
            self._io = await connect(
                scheme, host, port, ssl_context=self._ssl_context, timeout=_seconds(timeout)
            )

    async def _send_request(
        self,
        request: h11.Request,
        body: bytes | AsyncIterable[bytes],
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        io = self._io
        assert io is not None
        connection = self._h11
        if isinstance(body, bytes):
            with WRITING:
                head = connection.send(request)
                assert head is not None
                if body and len(body) >= JOIN_BELOW:
                    await io.send(head, timeout)
                    head = b""
                    await self._send_data(io, body, timeout)
                elif body:
                    head += connection.send(h11.Data(data=body)) or b""
                end = connection.send(h11.EndOfMessage())
                await io.send(head + end if end else head, timeout)
            return
        with WRITING:
            head = connection.send(request)
            assert head is not None
            await io.send(head, timeout)
        # The caller's chunks are read outside the mapping: their failures are theirs.
        async for chunk in body:
            with WRITING:
                await self._send_data(io, chunk, timeout)
        with WRITING:
            end = connection.send(h11.EndOfMessage())
            if end:
                await io.send(end, timeout)

    async def _send_data(self, io: NetworkStream, chunk: bytes, timeout: float) -> None:  # noqa: ASYNC109
        # h11 hands back the chunk itself (no copy) under Content-Length framing.
        for piece in self._h11.send_with_data_passthrough(h11.Data(data=chunk)) or ():
            await io.send(piece, timeout)

    async def _next_event(self, timeout: float, answer_due: bool = False) -> Any:  # noqa: ASYNC109
        """The next h11 event, reading as needed; ``answer_due``: the request was just
        sent, so the first read waits for the socket before it tries."""
        connection = self._h11
        with READING:
            while True:
                event = connection.next_event()
                if event is not h11.NEED_DATA:
                    return event
                data = await self._receive(timeout, answer_due=answer_due)
                answer_due = False
                if not data and connection.their_state is h11.SEND_RESPONSE:
                    raise httpcore.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                connection.receive_data(data)

    async def _receive(
        self,
        timeout: float,  # noqa: ASYNC109
        limit: int | None = None,
        answer_due: bool = False,
    ) -> bytes:
        """One read of at most the current read size (and ``limit``), which doubles
        while reads come back full and falls back when one does not."""
        io = self._io
        assert io is not None
        size = self._read_size
        data = await io.receive(size if limit is None else min(size, limit), timeout, answer_due)
        if len(data) == size:
            self._read_size = min(size * 2, MAX_READ_SIZE)
        elif size != READ_SIZE:
            self._read_size = READ_SIZE
        return data

    async def _response_closed(self) -> None:
        """The end of an exchange h11 carried: reusable when both sides are DONE."""
        connection = self._h11
        reusable = connection.our_state is h11.DONE and connection.their_state is h11.DONE
        if reusable:
            connection.start_next_cycle()
            self._h11_holds_data = bool(connection.trailing_data[0])
        await self._exchange_ended(reusable)

    async def _exchange_ended(self, reusable: bool) -> None:
        """Idle again (the keep-alive expiry from now) if ``reusable``, else closed."""
        if reusable:
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


class PlainBody:
    """An answer's body framed by its Content-Length, read without h11 (see
    :meth:`HTTP11Connection._plain_exchange`); closing it ends the request as
    :class:`Body` does. The connection is reused only when the body was read to
    its end, the request was sent whole, the server did not say ``close`` and
    sent nothing beyond the body."""

    __slots__ = (
        "_closed",
        "_connection",
        "_pending",
        "_received",
        "_remaining",
        "_reusable",
        "_timeout",
    )

    def __init__(
        self,
        connection: HTTP11Connection,
        pending: bytes,
        length: int,
        reusable: bool,
        timeout: float,
    ) -> None:
        self._connection = connection
        self._timeout = timeout
        if len(pending) > length:
            # More than the body (which h11 would keep for the next answer).
            connection._leftover = pending[length:]
            pending = pending[:length]
        self._pending = pending
        self._remaining = length - len(pending)
        self._received = len(pending)
        self._reusable = reusable
        self._closed = False

    def __aiter__(self) -> PlainBody:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        pending = self._pending
        if pending:
            self._pending = b""
            return pending
        remaining = self._remaining
        if not remaining:
            raise StopAsyncIteration
        try:
            with READING:
                data = await self._connection._receive(self._timeout, remaining)
            if not data:
                # h11's words for the same end (ContentLengthReader.read_eof).
                raise httpcore.RemoteProtocolError(
                    "peer closed connection without sending complete message body "
                    f"(received {self._received} bytes, expected {self._received + remaining})"
                )
        except BaseException:
            self._reusable = False
            await self.aclose()
            raise
        self._remaining = remaining - len(data)
        self._received += len(data)
        return data

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        done = not self._remaining and not self._pending
        await self._connection._exchange_ended(self._reusable and done)


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
