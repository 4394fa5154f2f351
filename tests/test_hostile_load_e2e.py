"""Issue 22's attacks on the event loop and the input checks, against a real server process.

One ``trio-s3rpc serve`` process (one worker, no storage service needed: every
attack here is refused or answered before any S3 request) takes each attack
in turn while a second client keeps calling ``s3.ListBuckets``: every one of
its calls must be answered within :data:`LIVENESS` (a liveness bound, not a
speed figure), and after the attack the server answers as before. The
attacking frames are encoded before the watch starts and their answers
decoded after it ends, so the test's own work never delays the bystander.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import msgpack
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import OFFLINE_SERVER, config_dict
from tests.support.services import free_port
from tests.support.workers import Service
from trio_s3rpc.client import RemoteError, RPCClient, open_stream
from trio_s3rpc.goridge.frame import (
    CODEC_JSON,
    CODEC_MSGPACK,
    FLAG_ERROR,
    FrameDecoder,
    encode_rpc_request,
)
from trio_s3rpc.metrics import MAX_REGISTERED_BUCKET_LABELS

pytestmark = pytest.mark.integration

LIVENESS = 0.5  # seconds: the longest a bystander's small call may wait


class Server:
    def __init__(self, service: Service, status_port: int) -> None:
        self.service = service
        self.address = service.address
        self.status = f"http://127.0.0.1:{status_port}"
        self.status_port = status_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    status_port = free_port()
    config = config_dict(
        OFFLINE_SERVER,
        s3={
            "abort_stale_after": 0,
            "workers": 1,
            "metrics": {"address": f"127.0.0.1:{status_port}"},
            "status": {"address": f"127.0.0.1:{status_port}"},
        },
    )
    service = Service(config, tmp_path_factory.mktemp("hostile"))
    try:
        yield Server(service, status_port)
    finally:
        assert service.stop() == 0
        assert "Traceback" not in service.log_path.read_text(errors="replace")


async def _receive_frames(stream: trio.SocketStream, count: int) -> list[Any]:
    decoder = FrameDecoder(max_payload=2**32 - 1)
    frames: list[Any] = []
    while len(frames) < count:
        frame = decoder.next_frame()
        if frame is not None:
            frames.append(frame)
            continue
        data = await stream.receive_some(1024 * 1024)
        assert data, "the server closed the connection"
        decoder.receive_data(data)
    return frames


async def watched(address: str, attack: Callable[[], Awaitable[Any]]) -> tuple[Any, list[float]]:
    """Run ``attack`` while a second client calls ListBuckets; its result and every latency."""
    latencies: list[float] = []
    async with await RPCClient.connect(address) as bystander:
        await bystander.call("s3.ListBuckets")
        done = trio.Event()

        async def keep_calling() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await bystander.call("s3.ListBuckets")
                latencies.append(time.perf_counter() - started)
                await trio.sleep(0.005)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_calling)
            try:
                result = await attack()
            finally:
                done.set()
    return result, latencies


def assert_live(latencies: list[float]) -> None:
    assert latencies, "the bystander made no call during the attack"
    slowest = sorted(latencies)[-5:]
    assert max(latencies) < LIVENESS, f"{len(latencies)} calls, the slowest took {slowest}"


async def assert_normal(server: Server) -> None:
    async with await RPCClient.connect(server.address) as rpc:
        assert (await rpc.call("s3.ListBuckets"))["default"] == "uploads"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.status}/health")).json() == {"status": "serving"}


async def one_call(address: str, method: str, codec: int, body: bytes) -> list[bytes]:
    """Send one prepared call; its answer frame as received, in pieces (joined and
    decoded by :func:`answer_of` once the watch is over: a large answer costs the
    test's own loop nothing while the bystander is timed)."""
    frame = encode_rpc_request(1, method, codec, body)
    stream = await open_stream(address)
    pieces: list[bytes] = []
    async with stream:
        await stream.send_all(frame)
        received, size = 0, 0
        while not size or received < size:
            data = await stream.receive_some(1024 * 1024)
            assert data, "the server closed the connection"
            pieces.append(data)
            received += len(data)
            if not size and received >= 6:
                head = b"".join(pieces)[:6]
                size = (head[0] & 0x0F) * 4 + struct.unpack_from("<I", head, 2)[0]
    return pieces


def answer_of(pieces: list[bytes]) -> tuple[int, bytes]:
    """(flags, payload after the method name) of an answer frame :func:`one_call` got."""
    decoder = FrameDecoder(max_payload=2**32 - 1)
    decoder.receive_data(b"".join(pieces))
    answer = decoder.next_frame()
    assert answer is not None
    return answer.flags, bytes(answer.payload[answer.options[1] :])


async def test_idle_connections_to_the_status_port_do_not_lock_out_probes(
    server: Server,
) -> None:
    held: list[trio.SocketStream] = []
    try:
        for index in range(300):
            stream = await trio.open_tcp_stream("127.0.0.1", server.status_port)
            if index % 3 == 0:  # some half-send a request head and stall
                await stream.send_all(b"GET /health HTTP/1.1\r\nhos")
            held.append(stream)

        async def probes() -> list[int]:
            async with httpx.AsyncClient() as http:
                return [(await http.get(f"{server.status}/health")).status_code for _ in range(5)]

        statuses, latencies = await watched(server.address, probes)
        assert statuses == [200] * 5
        assert_live(latencies)
    finally:
        for stream in held:
            await stream.aclose()
    await assert_normal(server)


async def test_a_write_with_a_million_metadata_entries_is_refused_without_stalling(
    server: Server,
) -> None:
    config = {f"k{index}": "v" for index in range(1_000_000)}
    body = msgpack.packb({"pathname": "a.txt", "content": b"x", "config": config})
    pieces, latencies = await watched(
        server.address, lambda: one_call(server.address, "s3.Write", CODEC_MSGPACK, body)
    )
    flags, text = answer_of(pieces)
    assert flags & FLAG_ERROR
    assert text.startswith(b"INVALID_REQUEST: cannot decode arguments: ")
    assert b"map entries" in text
    assert_live(latencies)
    await assert_normal(server)


async def test_delete_many_of_300k_invalid_pathnames_answers_each_without_stalling(
    server: Server,
) -> None:
    pathnames = [f"bad/../{index}" for index in range(300_000)]
    body = json.dumps({"pathnames": pathnames}).encode()
    pieces, latencies = await watched(
        server.address, lambda: one_call(server.address, "s3.DeleteMany", CODEC_JSON, body)
    )
    flags, payload = answer_of(pieces)
    assert not flags & FLAG_ERROR, payload[:200]
    answer = json.loads(payload)
    assert answer["deleted"] == []
    assert [error["pathname"] for error in answer["errors"]] == pathnames
    assert {error["code"] for error in answer["errors"]} == {"INVALID_PATHNAME"}
    assert_live(latencies)
    await assert_normal(server)


async def test_ten_thousand_registered_buckets_scrape_bounded_without_stalling(
    server: Server,
) -> None:
    count = 10_000
    registrations = b"".join(
        encode_rpc_request(
            index + 1,
            "s3.RegisterBucket",
            CODEC_JSON,
            json.dumps({"name": f"t{index:05d}", "server": "main", "bucket": "bkt"}).encode(),
        )
        for index in range(count)
    )
    stream = await open_stream(server.address)
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, registrations)
        answers = await _receive_frames(stream, count)
    assert not [frame for frame in answers if frame.flags & FLAG_ERROR]

    async def scrape() -> bytes:
        async with httpx.AsyncClient() as http:
            for _ in range(3):
                response = await http.get(f"{server.status}/metrics")
            return response.content

    exposition, latencies = await watched(server.address, scrape)
    assert_live(latencies)
    families = text_string_to_metric_families(exposition.decode())
    labelled = {
        sample.labels["bucket"]
        for family in families
        for sample in family.samples
        if "bucket" in sample.labels
    }
    registered = {name for name in labelled if name.startswith("t")}
    # The first registered (pipelined calls may land in any order), each under its name.
    assert len(registered) == MAX_REGISTERED_BUCKET_LABELS
    assert registered <= {f"t{index:05d}" for index in range(count)}
    assert len(exposition) < 2_000_000  # bounded by the label cap, not by the 10,000
    await assert_normal(server)


async def test_an_expires_no_http_date_can_carry_is_invalid_request(server: Server) -> None:
    async with await RPCClient.connect(server.address) as rpc:
        for expires in (10**12, 2**63 - 1):
            args = {"pathname": "a.txt", "content": "eA==", "expires": expires}
            with pytest.raises(RemoteError) as caught:
                await rpc.call("s3.Write", args)
            assert caught.value.text.startswith("INVALID_REQUEST: field 'expires'")
    await assert_normal(server)


async def test_an_invalid_utf8_method_name_is_answered_on_its_seq(server: Server) -> None:
    name = b"s3.List\xffBuckets"
    payload = name + b"[]"
    head = struct.pack("<BBI", 0x15, CODEC_JSON, len(payload))
    bad = (
        head + struct.pack("<I", zlib.crc32(head)) + b"\x00\x00" + struct.pack("<II", 2, len(name))
    )
    stream = await open_stream(server.address)
    async with stream:
        await stream.send_all(
            encode_rpc_request(1, "s3.ListBuckets", CODEC_JSON, b"[]")
            + bad
            + payload
            + encode_rpc_request(3, "s3.ListBuckets", CODEC_JSON, b"[]")
        )
        frames = {frame.options[0]: frame for frame in await _receive_frames(stream, 3)}
    assert sorted(frames) == [1, 2, 3]
    error = frames[2]
    assert error.flags & FLAG_ERROR
    assert bytes(error.payload[: error.options[1]]) == name
    assert bytes(error.payload[error.options[1] :]).startswith(
        b"INVALID_REQUEST: the method name is not valid UTF-8"
    )
    assert not frames[1].flags & FLAG_ERROR and not frames[3].flags & FLAG_ERROR
    await assert_normal(server)
