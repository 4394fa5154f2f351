"""A connection pool of our own over our HTTP/1.1 connections, for one S3 server.

httpcore's ``AsyncConnectionPool`` rescans every connection and every
waiting request, under a lock, each time a request starts or ends
(encode/httpcore#1035), so its CPU per request grows with the number of
concurrent requests. This pool keeps the parts of the job that S3 needs and
makes each of them O(1): idle connections on a stack (the most recently used
first, so the others age out) and a FIFO semaphore for the connection limit.
The connections are :class:`~trio_s3rpc.s3.http11.HTTP11Connection`: h11 on
the socket, held to httpcore's own connection by tests/s3/test_http11.py.

What it keeps from the library pool, and tests/s3/test_pool.py holds it to:

- **limits**: at most ``max_connections`` requests (and connections) at once;
  a request waits for a free one at most the ``pool`` timeout, then raises
  ``httpcore.PoolTimeout``; at most ``max_keepalive_connections`` stay idle;
- **keep-alive expiry**: a connection idle longer than ``keepalive_expiry`` is
  closed instead of reused;
- **broken connections**: an idle connection the server has closed (its
  socket reads EOF) is dropped before use, and a request that finds its
  connection no longer available (``ConnectionNotAvailable``) is repeated on
  another; a connection whose request failed or was cancelled is closed.

HTTP/1.1 only, one request at a time per connection. Connections are kept
per origin (a virtual-hosted bucket is an origin of its own); the limit is
for all of them.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterable, Mapping

import httpcore
import trio

from trio_s3rpc.s3.http11 import Body, HTTP11Connection, Origin, PlainBody, Response, unpack

DEFAULT_KEEPALIVE_EXPIRY = 5.0
# A request whose connection turns out unusable is repeated on a fresh one;
# more than this many in a row means something else is wrong.
MAX_UNAVAILABLE_RETRIES = 3


class ConnectionPool:
    """Connections by origin (scheme, host, port), one request on each at a time."""

    connection_class: type[HTTP11Connection] = HTTP11Connection
    """What a new connection is (``benchmarks/http_connection.py`` swaps in httpcore's)."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = DEFAULT_KEEPALIVE_EXPIRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.max_keepalive_connections = (
            max_connections if max_keepalive_connections is None else max_keepalive_connections
        )
        self.keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._free_connections = trio.Semaphore(max_connections)
        self._idle: dict[Origin, list[HTTP11Connection]] = {}
        self._idle_count = 0
        self._active: set[HTTP11Connection] = set()
        self._closed = False

    @property
    def idle_count(self) -> int:
        return self._idle_count

    @property
    def active_count(self) -> int:
        return len(self._active)

    async def request(self, request: httpcore.Request) -> Response:
        """Send an ``httpcore.Request`` (httpcore's interface; see :meth:`send`)."""
        return await self.send(*unpack(request))

    async def send(
        self,
        origin: Origin,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes],
        timeouts: Mapping[str, float | None],
    ) -> Response:
        """Send one request on a free connection to ``origin``; the caller must close
        the answer. ``timeouts`` as httpcore's: connect, read, write, pool (seconds).

        Closing the answer's stream (``await response.aclose()``) returns the
        connection to the pool, or closes it when it cannot be reused.
        Cancellation closes the connection in use and gives back its place under the limit.
        """
        if self._closed:
            raise httpcore.ConnectionNotAvailable("the pool is closed")
        if self._free_connections.value:
            # Room under the limit means nobody waits (trio hands a release to a waiter first).
            self._free_connections.acquire_nowait()
        else:
            pool_timeout = timeouts.get("pool")
            with trio.move_on_after(
                float("inf") if pool_timeout is None else pool_timeout
            ) as waiting:
                await self._free_connections.acquire()
            if waiting.cancelled_caught:
                raise httpcore.PoolTimeout(f"no free connection within {pool_timeout} s")
        try:
            for _ in range(MAX_UNAVAILABLE_RETRIES):
                connection = await self._checkout(origin)
                self._active.add(connection)
                try:
                    response = await connection.request(method, target, headers, body, timeouts)
                except httpcore.ConnectionNotAvailable:
                    self._active.discard(connection)
                    await _close_quietly(connection)
                    continue
                except BaseException:
                    self._active.discard(connection)
                    await _close_quietly(connection)
                    raise
                response.stream = _PooledStream(self, connection, response.stream)
                return response
            raise httpcore.ConnectionNotAvailable("no usable connection after retries")
        except BaseException:
            self._free_connections.release()
            raise

    async def _checkout(self, key: Origin) -> HTTP11Connection:
        """The most recently used idle connection to the origin that is still good, or a
        new one. Expired ones (idle too long, or closed by the server) are closed on the
        way."""
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.is_available() and not connection.has_expired():
                return connection
            with trio.CancelScope(shield=True):
                await _close_quietly(connection)
        return self.connection_class(
            key, ssl_context=self._ssl_context, keepalive_expiry=self.keepalive_expiry
        )

    def _release(self, connection: HTTP11Connection) -> bool:
        """Take a connection back after its answer was closed; True if kept for reuse."""
        self._active.discard(connection)
        self._free_connections.release()
        keep = (
            not self._closed
            and connection.is_idle()
            and self._idle_count < self.max_keepalive_connections
        )
        if keep:
            self._idle.setdefault(connection.origin, []).append(connection)
            self._idle_count += 1
        return keep

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail, later ones are refused."""
        self._closed = True
        connections = [c for stack in self._idle.values() for c in stack] + [*self._active]
        self._idle.clear()
        self._idle_count = 0
        self._active.clear()
        with trio.CancelScope(shield=True):
            for connection in connections:
                await _close_quietly(connection)


class _PooledStream:
    """An answer's body; closing it gives the connection back to the pool."""

    __slots__ = ("_connection", "_pool", "_released", "_stream")

    def __init__(
        self,
        pool: ConnectionPool,
        connection: HTTP11Connection,
        stream: Body | PlainBody,
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._stream = stream
        self._released = False

    def __aiter__(self) -> Body | PlainBody:
        # The connection's own iterator, not a generator around it: one layer
        # less per piece of a large body.
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            # Marks an h11 connection idle again if the answer was read to its end,
            # closes it otherwise (a body not read to the end cannot be skipped).
            await self._stream.aclose()
        except BaseException:
            self._pool._active.discard(self._connection)
            self._pool._free_connections.release()
            with trio.CancelScope(shield=True):
                await _close_quietly(self._connection)
            raise
        if not self._pool._release(self._connection):
            with trio.CancelScope(shield=True):
                await _close_quietly(self._connection)


async def _close_quietly(connection: HTTP11Connection) -> None:
    # Closing a broken socket may fail; it is gone either way.
    with contextlib.suppress(Exception):
        await connection.aclose()
