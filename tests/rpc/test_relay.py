"""The relay (``s3.relay``) against a real second Goridge RPC server as the upstream.

The upstream is ``tests/support/upstream.py``: the project's own RPC server
serving an ``echo`` service, as RoadRunner serves ``informer`` or ``jobs``.
Local ``s3.*`` calls go to SeaweedFS where they touch storage.
"""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio

from tests.rpc.test_server import assert_closed
from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import free_port
from tests.support.upstream import FAIL_MESSAGE, Upstream, running_upstream
from trio_s3rpc.app import Application
from trio_s3rpc.client import RemoteError, RPCClient, open_stream
from trio_s3rpc.embedded import S3Endpoint
from trio_s3rpc.goridge.frame import (
    CODEC_JSON,
    CODEC_MSGPACK,
    FLAG_ERROR,
    Frame,
    FrameDecoder,
    encode_rpc_request,
)

BUCKETS = {"uploads": {"bucket": "test-bucket", "prefix": "relay-tests/"}}


def relay_config(upstream: str, endpoint: S3Endpoint | None = None, **s3: Any) -> dict[str, Any]:
    """A server relaying to ``upstream``; its ``echo`` service is allowed unless ``s3`` says."""
    server = endpoint_server(endpoint) if endpoint is not None else None
    return config_dict(server, BUCKETS, s3={"relay": upstream, "relay_services": ["echo"], **s3})


async def read_frames(stream: trio.SocketStream, count: int) -> list[tuple[Frame, bytes]]:
    """``count`` answer frames, each with its bytes exactly as received."""
    decoder = FrameDecoder(2**32 - 1)
    buffer = bytearray()
    frames: list[tuple[Frame, bytes]] = []
    with trio.fail_after(10):
        while len(frames) < count:
            frame = decoder.next_frame()
            if frame is None:
                data = await stream.receive_some(65536)
                assert data, "the server closed the connection"
                decoder.receive_data(data)
                buffer += data
                continue
            size = 4 * (3 + len(frame.options)) + len(frame.payload)
            frames.append((frame, bytes(buffer[:size])))
            del buffer[:size]
    return frames


def with_seq(frame_bytes: bytes, seq: int) -> bytes:
    """The same frame with its seq option word replaced (the CRC covers bytes 0..5 only)."""
    return frame_bytes[:12] + struct.pack("<I", seq) + frame_bytes[16:]


def parse(frame_bytes: bytes) -> Frame:
    decoder = FrameDecoder(2**32 - 1)
    decoder.receive_data(frame_bytes)
    frame = decoder.next_frame()
    assert frame is not None
    return frame


def body_of(frame: Frame) -> bytes:
    return frame.payload[frame.options[1] :]


@asynccontextmanager
async def app_beside(upstream: Upstream, **kwargs: Any) -> AsyncIterator[tuple[Application, str]]:
    async with running_app(relay_config(upstream.address, **kwargs)) as running:
        yield running


async def test_relayed_and_local_calls_interleave_pipelined_byte_for_byte(
    seaweedfs: S3Endpoint,
) -> None:
    async with (
        running_upstream() as upstream,
        app_beside(upstream, endpoint=seaweedfs, relay_connections=1) as (
            _,
            address,
        ),
    ):
        async with await RPCClient.connect(address) as rpc:
            await rpc.call("s3.Write", {"pathname": "a.txt", "content": "aGk="})

        async def one_client(name: str, results: dict[str, list[tuple[Frame, bytes]]]) -> None:
            # Both clients use the same seqs, as two PHP processes do: the relay
            # must keep their calls apart on its shared upstream connections.
            who = name.encode()
            blob = msgpack.packb({"who": name, "blob": b"\x00\xff" * 40000})
            requests = [
                encode_rpc_request(1, "echo.Sleep", CODEC_JSON, b'{"seconds":0.3,"w":"%s"}' % who),
                encode_rpc_request(2, "s3.Exists", CODEC_JSON, b'{"pathname":"a.txt"}'),
                encode_rpc_request(3, "echo.Echo", CODEC_MSGPACK, blob),
                encode_rpc_request(
                    4, "s3.Read", CODEC_MSGPACK, msgpack.packb({"pathname": "a.txt"})
                ),
                encode_rpc_request(5, "echo.Fail", CODEC_JSON, b'{"w":"%s"}' % who),
                encode_rpc_request(6, "echo.Echo", CODEC_JSON, b'{"w":"%s","n":6}' % who),
                encode_rpc_request(7, "s3.ListBuckets", CODEC_JSON, b"[]"),
            ]
            stream = await open_stream(address)
            await stream.send_all(b"".join(requests))
            answers = await read_frames(stream, len(requests))
            await stream.aclose()
            results[name] = answers
            sent[name] = requests

        sent: dict[str, list[bytes]] = {}
        results: dict[str, list[tuple[Frame, bytes]]] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one_client, "ann", results)
            nursery.start_soon(one_client, "bob", results)

        received = upstream.dispatcher.received
        # Only the relayed calls reached the upstream, each once; never s3.*.
        assert sorted(r.method for r in received) == sorted(
            ["echo.Sleep", "echo.Echo", "echo.Fail", "echo.Echo"] * 2
        )
        # Eight relayed calls multiplexed over one upstream connection: distinct seqs there.
        assert len({r.seq for r in received}) == len(received)
        for name in ("ann", "bob"):
            answers = {frame.options[0]: (frame, raw) for frame, raw in results[name]}
            # Every answer carries its own seq; the slow first one came back last.
            assert sorted(answers) == [1, 2, 3, 4, 5, 6, 7]
            assert results[name][-1][0].options[0] == 1
            for seq in (1, 3, 5, 6):
                request_bytes = sent[name][seq - 1]
                # The upstream got the caller's frame unchanged but for the seq ...
                (match,) = [r for r in received if r.body == body_of(parse(request_bytes))]
                assert request_bytes == with_seq(
                    encode_rpc_request(match.seq, match.method, match.codec, match.body), seq
                )
                # ... and the caller got the upstream's answer unchanged but for the seq.
                _, raw = answers[seq]
                assert raw == with_seq(upstream.dispatcher.sent[match.seq], seq)
            fail_frame = answers[5][0]
            assert fail_frame.flags & FLAG_ERROR and body_of(fail_frame) == FAIL_MESSAGE.encode()
            assert msgpack.unpackb(body_of(answers[3][0]))["blob"] == b"\x00\xff" * 40000
            # The local calls were served here, from SeaweedFS.
            assert json.loads(body_of(answers[2][0])) == {"exists": True}
            assert msgpack.unpackb(body_of(answers[4][0]))["content"] == b"hi"
            assert json.loads(body_of(answers[7][0]))["buckets"] == ["uploads"]


async def test_upstream_stopped_and_restarted_relayed_calls_fail_clearly_then_work(
    seaweedfs: S3Endpoint,
) -> None:
    listen = f"tcp://127.0.0.1:{free_port()}"
    s3_failures: list[BaseException] = []
    s3_calls = 0
    async with running_app(relay_config(listen, seaweedfs)) as (app, address):
        async with trio.open_nursery() as background:

            async def keep_calling_s3() -> None:
                # s3.* keeps working, whatever RoadRunner does meanwhile.
                nonlocal s3_calls
                async with await RPCClient.connect(address) as s3_rpc:
                    while True:
                        try:
                            pathname = f"restart/{s3_calls}.txt"
                            await s3_rpc.call("s3.Write", {"pathname": pathname, "content": "aGk="})
                            assert await s3_rpc.call("s3.Exists", {"pathname": pathname}) == {
                                "exists": True
                            }
                        except Exception as exc:
                            s3_failures.append(exc)
                        s3_calls += 1

            async def s3_keeps_working() -> None:
                start = s3_calls
                with trio.fail_after(10):
                    while s3_calls < start + 2:
                        await trio.sleep(0.01)

            background.start_soon(keep_calling_s3)
            async with await RPCClient.connect(address) as rpc:
                # RoadRunner not started yet.
                with pytest.raises(RemoteError) as down:
                    await rpc.call("echo.Echo", {"n": 1})
                assert down.value.code == "RELAY_UNAVAILABLE"
                assert f"cannot reach RoadRunner's RPC at {listen} (s3.relay)" in down.value.text
                assert "Connection refused" in down.value.text
                await s3_keeps_working()

                async with running_upstream(listen) as upstream:
                    assert await rpc.call("echo.Echo", {"n": 2}) == {"n": 2}
                    # It crashes with a call in flight: that call fails clearly.
                    async with trio.open_nursery() as calls:
                        calls.start_soon(upstream_crashes_when_busy, upstream)
                        with pytest.raises(RemoteError) as lost:
                            await rpc.call("echo.Sleep", {"seconds": 30})
                    assert lost.value.code == "RELAY_UNAVAILABLE"
                    assert f"RoadRunner's RPC at {listen} (s3.relay)" in lost.value.text
                await s3_keeps_working()

                with pytest.raises(RemoteError) as still_down:
                    await rpc.call("echo.Echo", {"n": 3})
                assert still_down.value.code == "RELAY_UNAVAILABLE"
                assert listen in still_down.value.text
                await s3_keeps_working()

                # RoadRunner restarts on the same address: the relay reconnects by itself.
                async with running_upstream(listen) as upstream:
                    assert await rpc.call("echo.Echo", {"n": 4}) == {"n": 4}
                    await s3_keeps_working()
                assert app.relay is not None and app.relay.pending == 0
            background.cancel_scope.cancel()
    assert s3_failures == []


async def upstream_crashes_when_busy(upstream: Upstream) -> None:
    while upstream.dispatcher.in_progress == 0:
        await trio.sleep(0.01)
    upstream.crash()


async def test_a_relayed_call_that_never_answers_ends_at_the_relay_deadline() -> None:
    async with running_upstream() as upstream:
        async with app_beside(upstream, relay_timeout="0.3s") as (app, address):
            async with await RPCClient.connect(address) as rpc:
                with pytest.raises(RemoteError) as timed_out:
                    await rpc.call("echo.Hang", {"n": 1})
                assert timed_out.value.code == "OPERATION_TIMEOUT"
                assert upstream.address in timed_out.value.text
                assert (
                    "echo.Hang" in timed_out.value.text
                    and "s3.relay_timeout" in timed_out.value.text
                )
                # Nothing is left waiting, and the same connections keep working.
                assert app.relay is not None and app.relay.pending == 0
                assert await rpc.call("echo.Echo", {"n": 2}) == {"n": 2}
                assert app.relay.connection_count == 1


async def test_shutdown_ends_a_relayed_call_that_never_answers_and_closes_upstream() -> None:
    async with running_upstream() as upstream:
        config = relay_config(upstream.address, shutdown_timeout="0.3s", relay_timeout="1h")
        async with running_app(config) as (app, address):
            async with await RPCClient.connect(address) as rpc:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stop_when_busy, app, upstream)
                    with pytest.raises(RemoteError) as stopped:
                        await rpc.call("echo.Hang", {"n": 1})
                assert stopped.value.code == "SHUTTING_DOWN"
                assert "echo.Hang" in stopped.value.text
        # The app has stopped: nothing waits, and its upstream connection is closed.
        assert app.relay is not None and app.relay.pending == 0
        assert app.relay.connection_count == 0
        with trio.fail_after(5):
            while upstream.server.connection_count:
                await trio.sleep(0.01)


async def stop_when_busy(app: Application, upstream: Upstream) -> None:
    while upstream.dispatcher.in_progress == 0:
        await trio.sleep(0.01)
    app.request_shutdown()


async def test_relayed_calls_count_against_max_in_flight() -> None:
    async with running_upstream() as upstream:
        async with app_beside(upstream, max_in_flight=2, relay_timeout="0.5s") as (_, address):
            stream = await open_stream(address)
            await stream.send_all(
                b"".join(
                    encode_rpc_request(seq, "echo.Hang", CODEC_JSON, b"{}") for seq in (1, 2, 3)
                )
            )
            with trio.fail_after(5):
                while upstream.dispatcher.in_progress < 2:
                    await trio.sleep(0.01)
            # The third call waits in the socket until one of the first two ends.
            assert upstream.dispatcher.in_progress == 2
            assert len(upstream.dispatcher.received) == 2
            answers = await read_frames(stream, 3)
            assert sorted(frame.options[0] for frame, _ in answers) == [1, 2, 3]
            assert all(frame.flags & FLAG_ERROR for frame, _ in answers)
            assert len(upstream.dispatcher.received) == 3
            await stream.aclose()


@asynccontextmanager
async def fake_upstream(answer: bytes) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A tcp server that answers any request with ``answer`` bytes, then waits.

    Yields its address and, per connection, what it received until the peer closed.
    """
    received: list[bytes] = []

    async def handle(stream: trio.SocketStream) -> None:
        data = bytearray()
        answered = False
        try:
            while chunk := await stream.receive_some(65536):
                data += chunk
                if not answered:
                    await stream.send_all(answer)
                    answered = True
        except trio.BrokenResourceError:
            pass
        received.append(bytes(data))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"tcp://127.0.0.1:{port}", received
        nursery.cancel_scope.cancel()


def frame_header(payload_length: int, options: tuple[int, ...] = (1, 9)) -> bytes:
    first = (1 << 4) | (3 + len(options))
    prefix = struct.pack("<BBI", first, CODEC_JSON, payload_length)
    crc = zlib.crc32(prefix)
    return prefix + struct.pack("<IBB", crc, 0, 0) + struct.pack(f"<{len(options)}I", *options)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "it sent a bad frame (header CRC mismatch"),
        (frame_header(64 * 1024 * 1024), "exceeds the maximum of 65536 bytes"),
        (frame_header(9, options=(1,)) + b"echo.Echo", "needs 2 options"),
    ],
    ids=["garbage", "too-large", "not-an-answer"],
)
async def test_a_bad_upstream_frame_closes_only_the_upstream_connection(
    answer: bytes, why: str
) -> None:
    async with fake_upstream(answer) as (upstream_address, received):
        config = relay_config(upstream_address, max_frame_size="64KiB")
        async with running_app(config) as (app, address):
            async with await RPCClient.connect(address) as rpc:
                with pytest.raises(RemoteError) as bad:
                    await rpc.call("echo.Echo", {"n": 1})
                assert bad.value.code == "RELAY_UNAVAILABLE"
                assert upstream_address in bad.value.text and why in bad.value.text
                # The caller's connection is fine, for local calls and relayed ones.
                assert (await rpc.call("s3.ListBuckets"))["buckets"] == ["uploads"]
                with pytest.raises(RemoteError) as again:
                    await rpc.call("echo.Echo", {"n": 2})
                assert again.value.code == "RELAY_UNAVAILABLE"
                assert why in again.value.text
            with trio.fail_after(5):
                while len(received) < 2:
                    await trio.sleep(0.01)
            # Each bad answer closed its upstream connection; the relay opened a new one.
            assert [data.count(b"echo.Echo") for data in received] == [1, 1]
            assert app.relay is not None and app.relay.pending == 0


async def test_without_a_relay_other_services_are_unknown_methods() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        assert app.relay is None
        async with await RPCClient.connect(address) as rpc:
            with pytest.raises(RemoteError) as unknown:
                await rpc.call("informer.Workers", {"plugin": "http"})
    assert unknown.value.code == "METHOD_NOT_FOUND"


async def test_a_service_not_in_relay_services_is_not_relayed_and_names_the_setting() -> None:
    # The default list: RoadRunner's service plugin (service.Create starts any
    # command) and a service nobody named never reach RoadRunner.
    async with (
        running_upstream() as upstream,
        running_app(config_dict(buckets=BUCKETS, s3={"relay": upstream.address})) as (_, address),
    ):
        async with await RPCClient.connect(address) as rpc:
            for method in ("service.Create", "echo.Echo", "resetter.Reset", "informer.AddWorker"):
                with pytest.raises(RemoteError) as refused:
                    await rpc.call(method, {"name": "x", "command": "touch /tmp/owned"})
                assert refused.value.code == "METHOD_NOT_FOUND"
                assert method in refused.value.text and "s3.relay_services" in refused.value.text
            # What the default allows still goes through.
            assert await rpc.call("informer.Workers", {"plugin": "http"}) == {"plugin": "http"}
            assert await rpc.call("kv.Has", {"keys": ["a"]}) == {"keys": ["a"]}
    assert [request.method for request in upstream.dispatcher.received] == [
        "informer.Workers",
        "kv.Has",
    ]


async def test_relay_services_take_services_and_single_methods() -> None:
    async with (
        running_upstream() as upstream,
        app_beside(upstream, relay_services=["echo.Echo", "kv"]) as (_, address),
    ):
        async with await RPCClient.connect(address) as rpc:
            assert await rpc.call("echo.Echo", {"n": 1}) == {"n": 1}
            assert await rpc.call("kv.Get", {"n": 2}) == {"n": 2}
            with pytest.raises(RemoteError) as refused:
                await rpc.call("echo.Sleep", {"seconds": 0})
            assert refused.value.code == "METHOD_NOT_FOUND"
            assert "s3.relay_services (echo.Echo, kv)" in refused.value.text
    assert [request.method for request in upstream.dispatcher.received] == ["echo.Echo", "kv.Get"]


async def test_relay_to_a_unix_socket(tmp_path: Path) -> None:
    async with running_upstream(f"unix://{tmp_path / 'rr.sock'}") as upstream:
        assert upstream.address.startswith("unix://")
        async with app_beside(upstream) as (_, address):
            async with await RPCClient.connect(address, codec="msgpack") as rpc:
                assert await rpc.call("echo.Echo", {"blob": b"\x00\x01"}) == {"blob": b"\x00\x01"}


async def test_graceful_stop_lets_a_relayed_call_in_flight_finish() -> None:
    async with running_upstream() as upstream:
        config = relay_config(upstream.address, shutdown_timeout="10s")
        async with running_app(config) as (app, address):
            async with await RPCClient.connect(address) as rpc:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stop_when_busy, app, upstream)
                    answer = await rpc.call("echo.Sleep", {"seconds": 0.3, "n": 1})
                assert answer == {"seconds": 0.3, "n": 1}
        assert app.relay is not None and app.relay.pending == 0


async def test_a_caller_frame_over_max_frame_size_closes_that_caller_only() -> None:
    async with running_upstream() as upstream:
        async with app_beside(upstream, max_frame_size="64KiB") as (_, address):
            big = encode_rpc_request(1, "echo.Echo", CODEC_JSON, b'"' + b"x" * 70000 + b'"')
            stream = await open_stream(address)
            await stream.send_all(big[:4096])
            await assert_closed(stream)
            await stream.aclose()
            # Nothing reached RoadRunner, and other callers are served.
            assert upstream.dispatcher.received == []
            async with await RPCClient.connect(address) as rpc:
                assert await rpc.call("echo.Echo", {"n": 1}) == {"n": 1}


async def test_calls_waiting_on_a_failed_connect_share_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_s3rpc.relay")
    down = f"tcp://127.0.0.1:{free_port()}"
    async with running_app(relay_config(down)) as (app, address):
        stream = await open_stream(address)
        await stream.send_all(
            b"".join(
                encode_rpc_request(seq, "echo.Echo", CODEC_JSON, b"{}") for seq in range(1, 21)
            )
        )
        answers = await read_frames(stream, 20)
        await stream.aclose()
    assert sorted(frame.options[0] for frame, _ in answers) == list(range(1, 21))
    for frame, _ in answers:
        assert frame.flags & FLAG_ERROR
        assert body_of(frame).startswith(b"RELAY_UNAVAILABLE: cannot reach RoadRunner's RPC at")
    # Twenty calls at once did not make twenty connect attempts.
    attempts = [r for r in caplog.records if "event=relay_connect_failed" in r.getMessage()]
    assert 1 <= len(attempts) <= 2
    assert app.relay is not None and app.relay.pending == 0
