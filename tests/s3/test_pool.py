"""Our connection pool keeps what httpcore's pool gives: limits, keep-alive and its expiry,
broken connections dropped, and the same bytes on the wire (checked against httpcore's
own ``AsyncConnectionPool`` on the same requests)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import httpcore
import pytest
import trio

from tests.support.http import content_length, read_body, read_head
from trio_s3rpc.s3.pool import ConnectionPool


@dataclass(slots=True)
class Server:
    """HTTP/1.1 on loopback: answers each request with ``body`` after ``delay`` seconds,
    records the raw requests, counts connections; ``close_after_answer`` hangs up (without
    saying so) after each answer."""

    body: bytes = b"hello"
    delay: float = 0.0
    close_after_answer: bool = False
    port: int = 0
    accepted: int = 0
    open_now: int = 0
    peak_open: int = 0
    closed_by_client: int = 0
    raw_requests: list[bytes] = field(default_factory=list)

    async def handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)
        buffer = b""
        try:
            async with stream:
                while True:
                    got = await read_head(stream, buffer)
                    if got is None:
                        self.closed_by_client += 1
                        return
                    head, buffer = got
                    read = await read_body(stream, buffer, content_length(head))
                    if read is None:
                        self.closed_by_client += 1
                        return
                    body, buffer = read
                    self.raw_requests.append(head + b"\r\n\r\n" + body)
                    await trio.sleep(self.delay)
                    payload = b"" if head.startswith(b"HEAD ") else self.body
                    await stream.send_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(self.body), payload)
                    )
                    if self.close_after_answer:
                        return
        except trio.BrokenResourceError:  # the client closed with bytes unread: a reset
            self.closed_by_client += 1
        finally:
            self.open_now -= 1

    def request(
        self, method: bytes = b"GET", target: bytes = b"/k", body: bytes = b"", **timeouts: float
    ) -> httpcore.Request:
        headers = [(b"host", f"127.0.0.1:{self.port}".encode())]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        return httpcore.Request(
            method,
            httpcore.URL(scheme=b"http", host=b"127.0.0.1", port=self.port, target=target),
            headers=headers,
            content=body,
            extensions={"timeout": timeouts} if timeouts else {},
        )


@pytest.fixture
async def server(nursery: trio.Nursery) -> Server:
    server = Server()
    serve = functools.partial(trio.serve_tcp, host="127.0.0.1")
    listeners = await nursery.start(serve, server.handle, 0)
    server.port = listeners[0].socket.getsockname()[1]
    return server


async def fetch(pool: ConnectionPool, request: httpcore.Request) -> bytes:
    response = await pool.request(request)
    try:
        return b"".join([chunk async for chunk in response.stream])
    finally:
        await response.aclose()


async def test_connections_are_reused(server: Server) -> None:
    pool = ConnectionPool(max_connections=4)
    try:
        for _ in range(5):
            assert await fetch(pool, server.request()) == b"hello"
        assert server.accepted == 1
        assert (pool.idle_count, pool.active_count) == (1, 0)
    finally:
        await pool.aclose()
    await trio.sleep(0.05)
    assert server.closed_by_client == 1


@pytest.mark.parametrize(("limit", "tasks"), [(3, 9), (8, 8)])
async def test_at_most_max_connections_at_once_and_all_of_them_used(
    server: Server, limit: int, tasks: int
) -> None:
    server.delay = 0.05
    pool = ConnectionPool(max_connections=limit)
    answers: list[bytes] = []

    async def one() -> None:
        answers.append(await fetch(pool, server.request()))

    try:
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(one)
    finally:
        await pool.aclose()
    assert answers == [b"hello"] * tasks
    assert server.peak_open == limit
    assert server.accepted == limit


async def test_waiting_for_a_connection_is_bounded_by_the_pool_timeout(server: Server) -> None:
    server.delay = 1.0
    pool = ConnectionPool(max_connections=1)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch, pool, server.request())
            await trio.sleep(0.05)
            with pytest.raises(httpcore.PoolTimeout):
                await fetch(pool, server.request(pool=0.1))
            nursery.cancel_scope.cancel()
        # The cancelled request gave its slot back: the pool still serves.
        server.delay = 0.0
        assert await fetch(pool, server.request(pool=1.0)) == b"hello"
    finally:
        await pool.aclose()


async def test_idle_connections_beyond_the_keepalive_limit_are_closed(server: Server) -> None:
    server.delay = 0.05
    pool = ConnectionPool(max_connections=4, max_keepalive_connections=1)
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(fetch, pool, server.request())
        assert server.accepted == 4
        assert pool.idle_count == 1
        await trio.sleep(0.05)
        assert server.closed_by_client == 3
    finally:
        await pool.aclose()


async def test_a_connection_idle_past_its_keepalive_expiry_is_not_reused(server: Server) -> None:
    pool = ConnectionPool(max_connections=2, keepalive_expiry=0.1)
    try:
        assert await fetch(pool, server.request()) == b"hello"
        await trio.sleep(0.25)
        assert await fetch(pool, server.request()) == b"hello"
        assert server.accepted == 2
        await trio.sleep(0.05)
        assert server.closed_by_client == 1  # the expired one
    finally:
        await pool.aclose()


async def test_a_connection_the_server_closed_is_dropped_not_used(server: Server) -> None:
    server.close_after_answer = True
    pool = ConnectionPool(max_connections=2)
    try:
        for _ in range(3):
            assert await fetch(pool, server.request()) == b"hello"
            await trio.sleep(0.05)  # the server's FIN arrives
        assert server.accepted == 3
        assert len(server.raw_requests) == 3
    finally:
        await pool.aclose()


async def test_a_cancelled_request_closes_its_connection_and_frees_its_slot(
    server: Server,
) -> None:
    server.delay = 5.0
    pool = ConnectionPool(max_connections=1)
    try:
        with trio.move_on_after(0.1):
            await fetch(pool, server.request())
        assert (pool.active_count, pool.idle_count) == (0, 0)
        server.delay = 0.0
        assert await fetch(pool, server.request(pool=1.0)) == b"hello"
        assert server.accepted == 2  # the cancelled one's connection was not reused
    finally:
        await pool.aclose()


async def test_an_answer_closed_before_its_end_does_not_return_its_connection(
    server: Server,
) -> None:
    server.body = b"x" * 200_000
    pool = ConnectionPool(max_connections=1)
    try:
        response = await pool.request(server.request())
        async for _ in response.stream:
            break
        await response.aclose()
        assert (pool.idle_count, pool.active_count) == (0, 0)
        assert await fetch(pool, server.request()) == server.body
        assert server.accepted == 2
    finally:
        await pool.aclose()


async def test_a_refused_connection_raises_connect_error_and_frees_its_slot() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = ConnectionPool(max_connections=1)
    request = Server(port=port).request(pool=0.5)
    try:
        for _ in range(2):
            with pytest.raises(httpcore.ConnectError):
                await fetch(pool, request)
        assert pool.active_count == 0
    finally:
        await pool.aclose()


async def test_the_bytes_on_the_wire_are_httpcores(server: Server) -> None:
    """The same requests through httpcore's AsyncConnectionPool and through ours."""
    requests = [
        lambda: server.request(b"GET", b"/a/b%20c?x=1"),
        lambda: server.request(b"PUT", b"/k", b"body bytes"),
        lambda: server.request(b"HEAD", b"/k"),
        lambda: server.request(b"DELETE", b"/k?versionId=3"),
    ]
    async with httpcore.AsyncConnectionPool(max_connections=2) as library:
        for make in requests:
            response = await library.handle_async_request(make())
            await response.aread()
            await response.aclose()
            assert response.status == 200
    theirs = list(server.raw_requests)
    server.raw_requests.clear()
    ours = ConnectionPool(max_connections=2)
    try:
        for make in requests:
            body = await fetch(ours, make())
            assert body == (b"" if make().method == b"HEAD" else b"hello")
    finally:
        await ours.aclose()
    assert server.raw_requests == theirs
