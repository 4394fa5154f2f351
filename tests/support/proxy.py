"""A trio TCP proxy that records HTTP request heads and injects connection faults.

Tests put it between the server and the S3 service to see what was sent
(``requests``: every request line plus headers, in order) and to make the
network fail on cue: cut a connection once it has carried more than a number
of bytes in either direction, refuse new connections, or abort every open one
now. A cut is abortive (RST on both sides), as a crashed peer or a dropped
link looks to the client; an orderly end of stream is passed on as one.
``HeadRecorder`` is the sans-IO part that finds heads in a byte stream.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass, field
from enum import Enum, auto
from functools import partial

import trio

RECEIVE_SIZE = 64 * 1024
# Past this without a blank line the stream is not HTTP we understand.
MAX_HEAD_BYTES = 64 * 1024


class _Framing(Enum):
    HEAD = auto()
    BODY = auto()
    CHUNK_SIZE = auto()
    CHUNK_DATA = auto()
    TRAILER = auto()
    LOST = auto()


class HeadRecorder:
    """Feed the client→server bytes of one connection; get each request head once complete.

    Bodies are skipped by Content-Length or chunked framing. Anything else
    (a head that never ends, a malformed chunk size) stops the recording for
    this connection rather than guessing.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._framing = _Framing.HEAD
        self._remaining = 0

    @property
    def lost(self) -> bool:
        return self._framing is _Framing.LOST

    def feed(self, data: bytes) -> list[bytes]:
        if self.lost:
            return []
        self._buffer += data
        heads: list[bytes] = []
        while self._buffer and not self.lost:
            if self._framing in (_Framing.BODY, _Framing.CHUNK_DATA):
                self._skip_body()
            elif not self._consume_line_or_head(heads):
                break
        return heads

    def _skip_body(self) -> None:
        skipped = min(self._remaining, len(self._buffer))
        del self._buffer[:skipped]
        self._remaining -= skipped
        if self._remaining == 0:
            framing = self._framing
            self._framing = _Framing.HEAD if framing is _Framing.BODY else _Framing.CHUNK_SIZE

    def _consume_line_or_head(self, heads: list[bytes]) -> bool:
        """Handle one head or framing line; False when more bytes are needed."""
        if self._framing is _Framing.HEAD:
            # Stray CRLFs between requests are allowed by RFC 9112.
            while self._buffer.startswith(b"\r\n"):
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    self._framing = _Framing.LOST
                return False
            head = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            heads.append(head)
            self._start_body(head)
            return True
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                self._framing = _Framing.LOST
            return False
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        if self._framing is _Framing.TRAILER:
            if not line:
                self._framing = _Framing.HEAD
        else:
            self._start_chunk(line)
        return True

    def _start_body(self, head: bytes) -> None:
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            self._framing = _Framing.CHUNK_SIZE
            return
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            self._framing = _Framing.LOST
            return
        if length > 0:
            self._framing, self._remaining = _Framing.BODY, length

    def _start_chunk(self, line: bytes) -> None:
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            self._framing = _Framing.LOST
            return
        if size == 0:
            self._framing = _Framing.TRAILER
        else:
            # The chunk's data and the CRLF that ends it.
            self._framing, self._remaining = _Framing.CHUNK_DATA, size + 2


def abort(stream: trio.SocketStream) -> None:
    """Close at once with a TCP reset, as a crashed peer would (synchronous)."""
    with contextlib.suppress(OSError):
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # trio wakes any task blocked on this socket with ClosedResourceError.
    stream.socket.close()


@dataclass(eq=False)
class _Link:
    """One proxied connection: both streams and the bytes each way so far."""

    client: trio.SocketStream
    server: trio.SocketStream
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    sent: int = 0
    received: int = 0
    cut: bool = False
    # Answers on this link wait for it (set when a held kind of request passed).
    answers_wait_for: trio.Event | None = None

    def cut_now(self) -> None:
        self.cut = True
        abort(self.client)
        abort(self.server)
        self.scope.cancel()


def is_create(head: bytes) -> bool:
    """Is this request head a CreateMultipartUpload's?"""
    line = head.split(b"\r\n", 1)[0]
    return line.startswith(b"POST ") and (b"?uploads " in line or b"?uploads= " in line)


def allowed(count: int, limit: int | None, size: int) -> int:
    """How many of ``size`` more bytes may pass when ``count`` already did."""
    if limit is None:
        return size
    return max(0, min(size, limit - count))


class TCPProxy:
    """Listens on 127.0.0.1 and relays each connection to the target."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.requests: list[bytes] = []
        self.cut_after_bytes: int | None = None
        self.cut_responses_after_bytes: int | None = None
        # How many more connections the byte limits may cut (None: every one).
        self.cuts_left: int | None = None
        self.refuse = False
        # While set to an event, requests wait for it before they are passed on.
        self.held: trio.Event | None = None
        # While set, a CreateMultipartUpload (POST ...?uploads) reaches the service at
        # once, but its answer, and anything after it on that connection, waits for it.
        self.create_answers_held: trio.Event | None = None
        self._links: set[_Link] = set()

    async def start(self, nursery: trio.Nursery) -> int:
        """Start serving in ``nursery`` (cancel it to stop); return the listening port."""
        listeners = await nursery.start(partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1"))
        self.port = int(listeners[0].socket.getsockname()[1])
        return self.port

    def cut_all(self) -> None:
        """Abort every open connection now."""
        for link in list(self._links):
            link.cut_now()

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.refuse:
            abort(client)
            return
        try:
            server = await trio.open_tcp_stream(self.target_host, self.target_port)
        except OSError:
            abort(client)
            return
        link = _Link(client, server)
        self._links.add(link)
        try:
            with link.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._relay_requests, link)
                    nursery.start_soon(self._relay_responses, link)
        finally:
            self._links.discard(link)
            if link.cut:
                abort(client)
                abort(server)
            else:
                with trio.CancelScope(shield=True):
                    await client.aclose()
                    await server.aclose()

    async def _relay_requests(self, link: _Link) -> None:
        recorder = HeadRecorder()
        while True:
            data = await self._receive(link, link.client)
            if data is None:
                return
            while self.held is not None:
                await self.held.wait()
            passing = self._passing(link.sent, self.cut_after_bytes, len(data))
            heads = recorder.feed(data[:passing])
            self.requests.extend(heads)
            if self.create_answers_held is not None and any(map(is_create, heads)):
                link.answers_wait_for = self.create_answers_held
            link.sent += passing
            if not await self._send(link, link.server, data[:passing], whole=len(data)):
                return

    async def _relay_responses(self, link: _Link) -> None:
        while True:
            data = await self._receive(link, link.server)
            if data is None:
                return
            if link.answers_wait_for is not None:
                await link.answers_wait_for.wait()
            passing = self._passing(link.received, self.cut_responses_after_bytes, len(data))
            link.received += passing
            if not await self._send(link, link.client, data[:passing], whole=len(data)):
                return

    def _passing(self, count: int, limit: int | None, size: int) -> int:
        """``allowed``, while cuts are left; a cut it decides uses one up."""
        if self.cuts_left == 0:
            return size
        passing = allowed(count, limit, size)
        if passing < size and self.cuts_left is not None:
            self.cuts_left -= 1
        return passing

    async def _receive(self, link: _Link, source: trio.SocketStream) -> bytes | None:
        """The next bytes, or None at the end: an orderly end is passed on to the other side."""
        try:
            data = await source.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            link.cut_now()  # a reset on one side is a reset on the other
            return None
        if not data:
            other = link.server if source is link.client else link.client
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await other.send_eof()
            return None
        return data

    async def _send(
        self, link: _Link, destination: trio.SocketStream, data: bytes, *, whole: int
    ) -> bool:
        """Forward ``data``; cut the link (False) when it is less than the ``whole`` received."""
        try:
            if data:
                await destination.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            link.cut_now()
            return False
        if len(data) < whole:
            link.cut_now()
            return False
        return True
