"""The HTTP side on its own: routes, methods, keep-alive, and readiness bookkeeping."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.lowlevel

from trio_s3rpc.config import ListenAddress
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.status import HTTPServer, Readiness, Response, routes_for

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
        first = HTTPServer(LOOPBACK, {"/x": lambda: Response(200, "text/plain", b"")})
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
