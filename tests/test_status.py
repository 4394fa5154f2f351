"""The HTTP side on its own: routes, methods, keep-alive, and readiness bookkeeping."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.lowlevel

from trio_s3rpc.config import ListenAddress
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.status import (
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    HTTPServer,
    Page,
    Readiness,
    routes_for,
)

LOOPBACK = ListenAddress("tcp", host="127.0.0.1", port=0)


async def test_routes_methods_and_keep_alive() -> None:
    scrapes = 0

    def metrics() -> bytes:
        nonlocal scrapes
        scrapes += 1
        return b"up 1\n"

    async def answered(name: str) -> None:
        await trio.lowlevel.checkpoint()

    readiness = Readiness(["b"], answered, interval=60, timeout=1)
    server = HTTPServer(
        LOOPBACK,
        routes_for(metrics=metrics, readiness=readiness, serving=lambda: True,
                   content_type="text/plain; version=0.0.4"),
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.run)
        base = f"http://127.0.0.1:{bound.port}"
        transport = httpx.AsyncHTTPTransport(retries=0)
        async with httpx.AsyncClient(base_url=base, transport=transport) as http:
            first = await http.get("/metrics")
            second = await http.get("/metrics?x=1")  # the same connection, a query ignored
            assert (first.status_code, first.text, second.text) == (200, "up 1\n", "up 1\n")
            assert first.headers["content-type"] == "text/plain; version=0.0.4"
            head = await http.head("/metrics")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == "5"
            assert (await http.post("/metrics", content=b"x")).status_code == 405
            missing = await http.get("/nope")
            assert missing.status_code == 404 and "/metrics" in missing.text
            assert (await http.get("/health")).json() == {"status": "serving"}
            assert (await http.get("/ready")).status_code == 503  # not probed yet
        assert scrapes == 3
        nursery.cancel_scope.cancel()


async def test_a_busy_address_is_a_config_error() -> None:
    async with trio.open_nursery() as nursery:
        first = HTTPServer(LOOPBACK, {"/x": lambda: Page(200, "text/plain", b"")})
        bound = await nursery.start(first.run)
        second = HTTPServer(ListenAddress("tcp", host="127.0.0.1", port=bound.port), {})
        with pytest.raises(RPCError) as caught:
            await nursery.start(second.run)
        assert caught.value.code is ErrorCode.INVALID_CONFIG
        assert f"127.0.0.1:{bound.port}" in caught.value.message
        nursery.cancel_scope.cancel()


async def test_readiness_needs_every_bucket_and_a_recent_answer(autojump_clock: object) -> None:
    failing = {"b"}

    async def probe(name: str) -> None:
        if name in failing:
            raise RPCError(ErrorCode.PERMISSION_DENIED, "the storage service refused ListObjectsV2")
        await trio.lowlevel.checkpoint()

    readiness = Readiness(["a", "b"], probe, interval=1.0, timeout=0.5)
    changes: list[tuple[str, bool]] = []
    readiness.on_change = lambda bucket, ok: changes.append((bucket, ok))
    for name in ("a", "b"):
        await readiness.probe_once(name)
    ready, entries = readiness.report()
    assert not ready
    assert [(e["bucket"], e["ready"]) for e in entries] == [("a", True), ("b", False)]
    assert "PERMISSION_DENIED" in str(entries[1]["error"])
    failing.clear()
    await readiness.probe_once("b")
    assert readiness.report()[0]
    assert changes == [("a", True), ("b", False), ("b", True)]
    # An answer older than two intervals plus the timeout no longer counts.
    await trio.sleep(2.6)
    ready, entries = readiness.report()
    assert not ready and "ago" in str(entries[0]["error"])
    readiness.stopping = True
    assert readiness.ready_response().status == 503


async def test_a_probe_that_hangs_fails_after_its_timeout(autojump_clock: object) -> None:
    async def hangs(name: str) -> None:
        await trio.sleep_forever()

    readiness = Readiness(["slow"], hangs, interval=1, timeout=0.2)
    result = await readiness.probe_once("slow")
    assert not result.ok and "did not answer within 0.2 s" in result.error


async def _open_idle(port: int, count: int, first_bytes: bytes = b"") -> list[trio.SocketStream]:
    streams = []
    for _ in range(count):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        if first_bytes:
            await stream.send_all(first_bytes)
        streams.append(stream)
    return streams


async def _get(port: int, path: str) -> tuple[int, bytes]:
    """One request on a new connection, read to the end (the server closes it)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        request = f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode()
        await stream.send_all(request)
        received = b""
        while chunk := await stream.receive_some(65536):
            received += chunk
    status = int(received.split(b" ", 2)[1]) if received else 0
    return status, received.partition(b"\r\n\r\n")[2]


def _status_server() -> HTTPServer:
    async def answered(name: str) -> None:
        await trio.lowlevel.checkpoint()

    readiness = Readiness(["b"], answered, interval=60, timeout=1)
    return HTTPServer(LOOPBACK, routes_for(metrics=None, readiness=readiness, serving=lambda: True))


async def test_idle_and_half_sent_connections_cannot_lock_out_a_probe() -> None:
    server = _status_server()
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.run)
        held = await _open_idle(bound.port, MAX_CONNECTIONS)
        held += await _open_idle(bound.port, 20, b"GET /health HTTP/1.1\r\nhos")
        keep_alive = await _open_idle(bound.port, 5)
        for stream in keep_alive:  # answered once, then idle on a kept-alive connection
            await stream.send_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
        with trio.fail_after(5):
            for _ in range(3):
                status, body = await _get(bound.port, "/health")
                assert (status, body) == (200, b'{"status": "serving"}\n')
        for stream in held + keep_alive:
            await stream.aclose()
        nursery.cancel_scope.cancel()


async def _closed_by_server(stream: trio.SocketStream) -> bool:
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass
    return True


async def test_idle_keep_alive_and_slow_heads_are_closed_after_their_timeouts(
    autojump_clock: object,
) -> None:
    server = _status_server()
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.run)
        (idle,) = await _open_idle(bound.port, 1)
        await idle.send_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await idle.receive_some(65536)).startswith(b"HTTP/1.1 200")
        started = trio.current_time()
        assert await _closed_by_server(idle)
        assert trio.current_time() - started == pytest.approx(IDLE_TIMEOUT, abs=0.5)
        # A head sent one byte a second is cut at HEADER_TIMEOUT, however steady.
        (slow,) = await _open_idle(bound.port, 1)
        started = trio.current_time()
        with pytest.raises((trio.BrokenResourceError, trio.ClosedResourceError)):
            for byte in b"GET /health HTTP/1.1\r\n" + b"x" * 10_000:
                await slow.send_all(bytes([byte]))
                await trio.sleep(1)
                if trio.current_time() - started > HEADER_TIMEOUT + 2:
                    break
        assert trio.current_time() - started <= HEADER_TIMEOUT + 2
        await slow.aclose()
        nursery.cancel_scope.cancel()
