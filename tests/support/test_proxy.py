"""The fault-injecting proxy does what the transfer tests rely on.

An h11 echo server stands behind the proxy; httpx (over trio) is the client.
Every fault is checked from both ends: the client sees a transport error and
the server sees no more than the proxy let through.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

import h11
import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.support.proxy import HeadRecorder, TCPProxy


@dataclass
class EchoServer:
    """Answers each request with its body; ``/bytes/N`` sends N bytes; ``/hang`` stalls."""

    port: int = 0
    connections: int = 0
    bytes_per_connection: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    hanging: trio.Event = field(default_factory=trio.Event)

    async def handle(self, stream: trio.SocketStream) -> None:
        index = self.connections
        self.connections += 1
        self.bytes_per_connection.append(0)
        connection = h11.Connection(h11.SERVER)
        body = bytearray()
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    self.bytes_per_connection[index] += len(data)
                    connection.receive_data(data)
                elif isinstance(event, h11.Request):
                    target = event.target.decode()
                    body.clear()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self.bodies.append(bytes(body))
                    await self.answer(stream, connection, target, bytes(body))
                    if connection.our_state is not h11.DONE:
                        return
                    connection.start_next_cycle()
                else:  # ConnectionClosed
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return

    async def answer(
        self, stream: trio.SocketStream, connection: h11.Connection, target: str, body: bytes
    ) -> None:
        if target.startswith("/bytes/"):
            body = b"x" * int(target.removeprefix("/bytes/"))
        length = 10 if target == "/hang" else len(body)
        headers = [("content-length", str(length))]
        await stream.send_all(connection.send(h11.Response(status_code=200, headers=headers)))
        if target == "/hang":
            await stream.send_all(connection.send(h11.Data(data=b"12345")))
            self.hanging.set()
            await trio.sleep_forever()
        for start in range(0, len(body), 65536):
            await stream.send_all(connection.send(h11.Data(data=body[start : start + 65536])))
        await stream.send_all(connection.send(h11.EndOfMessage()))


@pytest.fixture
async def echo(nursery: trio.Nursery) -> EchoServer:
    server = EchoServer()
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server


@pytest.fixture
async def proxy(nursery: trio.Nursery, echo: EchoServer) -> TCPProxy:
    proxy = TCPProxy("127.0.0.1", echo.port)
    await proxy.start(nursery)
    return proxy


@pytest.fixture
async def client(proxy: TCPProxy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{proxy.port}", timeout=5, trust_env=False
    ) as client:
        yield client


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_relays_and_records_each_request_head_once(
    client: httpx.AsyncClient, proxy: TCPProxy, echo: EchoServer
) -> None:
    looks_like_a_head = b"GET /fake HTTP/1.1\r\nHost: x\r\n\r\n" * 3
    first = await client.post("/echo", content=looks_like_a_head)
    second = await client.get("/second?a=1")
    third = await client.post("/chunked", content=chunks(b"ab\r\n\r\n", looks_like_a_head))

    assert first.content == looks_like_a_head
    assert second.content == b""
    assert third.content == b"ab\r\n\r\n" + looks_like_a_head
    assert echo.connections == 1  # keep-alive: the heads were found in one stream
    assert [head.split(b"\r\n")[0] for head in proxy.requests] == [
        b"POST /echo HTTP/1.1",
        b"GET /second?a=1 HTTP/1.1",
        b"POST /chunked HTTP/1.1",
    ]
    assert all(head.endswith(b"\r\n\r\n") for head in proxy.requests)
    assert b"transfer-encoding: chunked" in proxy.requests[2].lower()


async def test_a_held_create_reaches_the_service_and_its_answer_waits(
    client: httpx.AsyncClient, proxy: TCPProxy, echo: EchoServer
) -> None:
    proxy.create_answers_held = release = trio.Event()
    answers: list[httpx.Response] = []

    async def create() -> None:
        async with httpx.AsyncClient(base_url=client.base_url, trust_env=False) as own:
            answers.append(await own.post("/k?uploads", content=b"create"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(create)
        with trio.fail_after(5):
            while b"create" not in echo.bodies:  # the service has it
                await trio.sleep(0.01)
        # Other connections, ListMultipartUploads among them, pass.
        assert (await client.get("/?uploads")).status_code == 200
        assert (await client.post("/k?uploadId=1", content=b"part")).content == b"part"
        await trio.sleep(0.1)
        assert answers == []
        release.set()
    assert [answer.content for answer in answers] == [b"create"]


async def test_cut_after_bytes_aborts_a_large_upload_and_passes_no_more(
    client: httpx.AsyncClient, proxy: TCPProxy, echo: EchoServer
) -> None:
    proxy.cut_after_bytes = 10_000
    with pytest.raises(httpx.TransportError):
        await client.post("/upload", content=b"u" * 200_000)
    assert echo.bodies == []
    assert max(echo.bytes_per_connection) <= 10_000

    proxy.cut_after_bytes = None
    answer = await client.post("/again", content=b"small")
    assert answer.content == b"small"


async def test_small_requests_pass_under_the_limit(
    client: httpx.AsyncClient, proxy: TCPProxy
) -> None:
    proxy.cut_after_bytes = 10_000
    answer = await client.post("/small", content=b"s" * 1000)
    assert answer.content == b"s" * 1000


async def test_cut_responses_after_bytes_aborts_a_large_download(
    proxy: TCPProxy, client: httpx.AsyncClient
) -> None:
    proxy.cut_responses_after_bytes = 100_000
    received = 0
    with pytest.raises(httpx.TransportError):
        async with client.stream("GET", "/bytes/1000000") as answer:
            async for chunk in answer.aiter_bytes():
                received += len(chunk)
    assert received < 100_000


async def test_refuse_closes_new_connections_until_lifted(
    client: httpx.AsyncClient, proxy: TCPProxy, echo: EchoServer
) -> None:
    proxy.refuse = True
    with pytest.raises(httpx.TransportError):
        await client.get("/refused")
    assert echo.connections == 0

    proxy.refuse = False
    assert (await client.post("/welcome", content=b"hi")).content == b"hi"


async def test_cut_all_aborts_open_connections(
    client: httpx.AsyncClient, proxy: TCPProxy, echo: EchoServer
) -> None:
    received = b""
    with pytest.raises(httpx.TransportError):
        async with client.stream("GET", "/hang") as answer:
            async for chunk in answer.aiter_bytes():
                received += chunk
                await echo.hanging.wait()
                proxy.cut_all()
    assert received == b"12345"
    # The proxy itself keeps serving.
    assert (await client.post("/after", content=b"ok")).content == b"ok"


REQUESTS = [
    b"PUT /a HTTP/1.1\r\nContent-Length: 12\r\n\r\nhello\r\n\r\nxyz",
    b"GET /b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\n\r\n\r\nX\r\n3\r\nabc\r\n0\r\nTrailer: t\r\n\r\n",
    b"\r\nDELETE /d?uploadId=7 HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
]
HEADS = [request.lstrip(b"\r\n").split(b"\r\n\r\n")[0] + b"\r\n\r\n" for request in REQUESTS]


@given(st.lists(st.integers(min_value=0, max_value=sum(map(len, REQUESTS))), max_size=12))
def test_recorder_finds_the_same_heads_however_the_stream_is_split(cuts: list[int]) -> None:
    stream = b"".join(REQUESTS)
    bounds = [0, *sorted(cuts), len(stream)]
    recorder = HeadRecorder()
    heads = []
    for start, end in itertools.pairwise(bounds):
        heads += recorder.feed(stream[start:end])
    assert heads == HEADS
