"""The RPC server over real sockets: framing, concurrency, errors, unix sockets.

These need no storage service: ListBuckets and RegisterBucket work from the
config alone, and a test-only method stands in for a slow call.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
import trio

from tests.support.server import config_dict, running_app
from trio_s3rpc import poller
from trio_s3rpc.client import RemoteError, RPCClient, open_stream
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.goridge import bounds
from trio_s3rpc.goridge.frame import (
    CODEC_GOB,
    CODEC_JSON,
    CODEC_MSGPACK,
    FLAG_ERROR,
    FrameDecoder,
    encode_rpc_request,
)
from trio_s3rpc.rpc import dispatch
from trio_s3rpc.rpc.decoding import omitempty


@pytest.fixture(autouse=True, params=["epoll", "task"])
def poller_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with both pollers: epoll (Linux) and a task per socket."""
    kind: str = request.param
    if kind == "epoll" and not poller.HAS_EPOLL:
        pytest.skip("this system has no epoll")
    monkeypatch.setattr(poller, "HAS_EPOLL", kind == "epoll")
    return kind


BUCKETS = {"uploads": {"bucket": "bkt1"}, "avatars": {"bucket": "bkt2", "prefix": "av/"}}


@dataclass(slots=True, frozen=True)
class SleepRequest:
    seconds: float
    tag: str = ""


@dataclass(slots=True, frozen=True)
class SleepResponse:
    tag: str
    note: str = omitempty("")


class Gathering:
    """``test.Gather`` calls wait until ``size`` of them run at once, so they finish only
    if they run concurrently; ``peak`` is the most that ever ran at once."""

    def __init__(self, app: object, size: int) -> None:
        self.size = size
        self.running = 0
        self.peak = 0
        self.all_here = trio.Event()
        app.registry.add("test.Gather", SleepRequest, SleepResponse, self.gather)  # type: ignore[attr-defined]

    async def gather(self, req: SleepRequest) -> SleepResponse:
        self.running += 1
        self.peak = max(self.peak, self.running)
        if self.running >= self.size:
            self.all_here.set()
        try:
            await self.all_here.wait()
        finally:
            self.running -= 1
        return SleepResponse(req.tag)


def add_sleep_method(app: object) -> None:
    async def sleep(req: SleepRequest) -> SleepResponse:
        await trio.sleep(req.seconds)
        return SleepResponse(req.tag)

    app.registry.add("test.Sleep", SleepRequest, SleepResponse, sleep)  # type: ignore[attr-defined]


async def read_answers(stream: trio.SocketStream, count: int) -> list[tuple[int, int, bytes]]:
    """Read ``count`` answer frames: (flags, seq, payload after the method name)."""
    decoder = FrameDecoder()
    answers: list[tuple[int, int, bytes]] = []
    while len(answers) < count:
        frame = decoder.next_frame()
        if frame is None:
            data = await stream.receive_some(65536)
            assert data, "server closed the connection"
            decoder.receive_data(data)
            continue
        assert len(frame.options) == 2
        answers.append((frame.flags, frame.options[0], frame.payload[frame.options[1] :]))
    return answers


async def assert_closed(stream: trio.SocketStream) -> None:
    with trio.fail_after(5):
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return


async def test_list_buckets_json_with_php_empty_array() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        stream = await open_stream(address)
        await stream.send_all(encode_rpc_request(1, "s3.ListBuckets", CODEC_JSON, b"[]"))
        [(flags, seq, body)] = await read_answers(stream, 1)
        assert seq == 1 and not flags & FLAG_ERROR
        assert json.loads(body) == {"buckets": ["avatars", "uploads"], "default": "uploads"}
        await stream.aclose()


async def test_list_buckets_msgpack() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        async with await RPCClient.connect(address, codec="msgpack") as rpc:
            answer = await rpc.call("s3.ListBuckets")
    assert answer == {"buckets": ["avatars", "uploads"], "default": "uploads"}


async def test_register_bucket_then_listed_and_duplicates_refused() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        async with await RPCClient.connect(address) as rpc:
            answer = await rpc.call(
                "s3.RegisterBucket",
                {
                    "name": "docs",
                    "server": "main",
                    "bucket": "bkt3",
                    "prefix": "d/",
                    "visibility": "public",
                },
            )
            assert answer == {"success": True, "message": "Bucket registered successfully"}
            listed = await rpc.call("s3.ListBuckets", [])
            assert listed["buckets"] == ["avatars", "docs", "uploads"]
            with pytest.raises(RemoteError) as duplicate:
                await rpc.call(
                    "s3.RegisterBucket", {"name": "docs", "server": "main", "bucket": "bkt3"}
                )
            assert duplicate.value.code == "BUCKET_ALREADY_EXISTS"
            assert "docs" in duplicate.value.text
            with pytest.raises(RemoteError) as unknown:
                await rpc.call(
                    "s3.RegisterBucket", {"name": "x", "server": "nope", "bucket": "bkt4"}
                )
            assert unknown.value.code == "INVALID_CONFIG"
            assert "nope" in unknown.value.text
            with pytest.raises(RemoteError) as bad_visibility:
                await rpc.call(
                    "s3.RegisterBucket",
                    {"name": "y", "server": "main", "bucket": "bkt5", "visibility": "publik"},
                )
            assert bad_visibility.value.code == "INVALID_CONFIG"
            assert "publik" in bad_visibility.value.text


async def test_register_bucket_takes_every_bucket_setting_of_the_config_file() -> None:
    settings = {
        "prefix": "cold/",
        "visibility": "public",
        "visibility_mode": "none",
        "max_concurrent_operations": 7,
        "part_size": 8 * 1024 * 1024,
        "concurrency": 3,
        "public_url": "https://cdn.example.com",
        "multipart_copy_threshold": 64 * 1024 * 1024,
        "storage_class": "GLACIER_IR",
        "sse": "aws:kms",
        "sse_kms_key_id": "alias/archive",
    }
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        async with await RPCClient.connect(address) as rpc:
            await rpc.call(
                "s3.RegisterBucket", {"name": "cold", "server": "main", "bucket": "bkt", **settings}
            )
            # Empty and null fields take the defaults, as the Go plugin's zero values do.
            await rpc.call(
                "s3.RegisterBucket",
                {"name": "plain", "server": "main", "bucket": "bkt", "sse": "", "part_size": None},
            )
            with pytest.raises(RemoteError) as mistyped:
                await rpc.call(
                    "s3.RegisterBucket",
                    {"name": "z", "server": "main", "bucket": "bkt", "part_size": "big"},
                )
            assert mistyped.value.code == "INVALID_REQUEST"
            assert "field 'part_size' must be an integer" in mistyped.value.text
            with pytest.raises(RemoteError) as out_of_range:
                await rpc.call(
                    "s3.RegisterBucket",
                    {"name": "z", "server": "main", "bucket": "bkt", "multipart_copy_threshold": 0},
                )
            assert out_of_range.value.code == "INVALID_CONFIG"
            assert "multipart_copy_threshold" in out_of_range.value.text
            with pytest.raises(RemoteError) as missing:
                await rpc.call("s3.RegisterBucket", {"name": "z", "server": "main"})
            assert "missing required field 'bucket'" in missing.value.text
    registered = app.storage.buckets["cold"].config
    assert {key: getattr(registered, key) for key in settings} == settings
    plain = app.storage.buckets["plain"].config
    assert (plain.sse, plain.part_size) == ("", 5 * 1024 * 1024)


async def test_pipelined_frames_answered_with_their_own_seqs_out_of_order() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        add_sleep_method(app)
        stream = await open_stream(address)
        frames = [
            encode_rpc_request(7, "test.Sleep", CODEC_JSON, b'{"seconds":0.5,"tag":"slow"}'),
            encode_rpc_request(8, "s3.ListBuckets", CODEC_JSON, b"[]"),
            encode_rpc_request(9, "test.Sleep", CODEC_JSON, b'{"seconds":0.1,"tag":"fast"}'),
        ]
        await stream.send_all(b"".join(frames))
        with trio.fail_after(5):
            answers = await read_answers(stream, 3)
        assert [seq for _, seq, _ in answers] == [8, 9, 7]
        assert json.loads(answers[2][2]) == {"tag": "slow"}
        assert json.loads(answers[1][2]) == {"tag": "fast"}
        await stream.aclose()


async def test_calls_on_one_connection_run_concurrently() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        gathering = Gathering(app, 10)
        stream = await open_stream(address)
        body = b'{"seconds":0}'
        await stream.send_all(
            b"".join(encode_rpc_request(s, "test.Gather", CODEC_JSON, body) for s in range(1, 11))
        )
        # In series, the first call would wait for the other nine forever.
        with trio.fail_after(30):
            answers = await read_answers(stream, 10)
        assert gathering.peak == 10
        assert sorted(seq for _, seq, _ in answers) == list(range(1, 11))
        await stream.aclose()


async def test_in_flight_calls_per_connection_are_bounded() -> None:
    config = config_dict(buckets=BUCKETS, rpc={"max_in_flight": 2})
    async with running_app(config) as (app, address):
        running = 0
        peak = 0

        async def sleep(req: SleepRequest) -> SleepResponse:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await trio.sleep(0.05)
            running -= 1
            return SleepResponse(req.tag)

        app.registry.add("test.Sleep", SleepRequest, SleepResponse, sleep)
        stream = await open_stream(address)
        body = b'{"seconds":0}'
        await stream.send_all(
            b"".join(encode_rpc_request(s, "test.Sleep", CODEC_JSON, body) for s in range(1, 9))
        )
        answers = await read_answers(stream, 8)
        assert len(answers) == 8
        assert peak == 2
        await stream.aclose()


async def test_a_client_that_never_reads_its_answers_is_pushed_back_and_others_are_served() -> None:
    """The attack: pipeline calls answered at once (ListBuckets) and never read the
    answers. Once the answers fill the socket, the server stops reading that client
    (its bytes wait in the kernel, not in the server), so the client's sends stall;
    other clients are served meanwhile, and when the client reads, every answer
    arrives whole and in order."""
    chunk_frames = 2048
    most_chunks = 300  # 600,000 calls, 16 MiB: far beyond loopback's buffers (here
    # the sends stalled after 216 KiB)
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        attacker = await open_stream(address)
        sent_chunks = 0
        seq = 0

        async def flood() -> None:
            nonlocal sent_chunks, seq
            for _ in range(most_chunks):
                first = seq + 1
                seq += chunk_frames
                await attacker.send_all(
                    b"".join(
                        encode_rpc_request(s, "s3.ListBuckets", CODEC_JSON, b"[]")
                        for s in range(first, first + chunk_frames)
                    )
                )
                sent_chunks += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            # Wait until the client's sends have made no progress for a second.
            with trio.fail_after(60):
                last = -1
                while sent_chunks != last:
                    last = sent_chunks
                    await trio.sleep(1)
            assert sent_chunks < most_chunks, "the server read every call while none was read"
            stalled_at = sent_chunks
            async with await RPCClient.connect(address) as bystander:
                with trio.fail_after(5):
                    assert (await bystander.call("s3.ListBuckets"))["default"] == "uploads"
            assert sent_chunks == stalled_at  # still pushed back
            nursery.cancel_scope.cancel()
        # Every call of the chunks sent is answered, in order.
        decoder = FrameDecoder()
        expected = 1
        with trio.fail_after(60):
            while expected <= sent_chunks * chunk_frames:
                answer = decoder.next_frame()
                if answer is None:
                    data = await attacker.receive_some(1 << 20)
                    assert data, f"server closed the connection before answer {expected}"
                    decoder.receive_data(data)
                    continue
                assert answer.options[0] == expected and not answer.flags & FLAG_ERROR
                expected += 1
        await attacker.aclose()


async def test_two_hundred_concurrent_connections() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        results: list[dict[str, object]] = []

        async def one_client() -> None:
            async with await RPCClient.connect(address) as rpc:
                for _ in range(3):
                    results.append(await rpc.call("s3.ListBuckets"))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(200):
                    nursery.start_soon(one_client)
    assert len(results) == 600
    assert all(r["buckets"] == ["avatars", "uploads"] for r in results)


@pytest.mark.parametrize(
    "bad_frame",
    [
        pytest.param(b"\x00" * 64, id="garbage"),
        pytest.param(
            # Announces 4 GiB with a valid CRC: must be refused before any payload arrives.
            struct.pack("<BBI", 0x15, CODEC_JSON, 0xFFFFFFFF)
            + struct.pack("<I", zlib.crc32(struct.pack("<BBI", 0x15, CODEC_JSON, 0xFFFFFFFF)))
            + b"\x00\x00"
            + struct.pack("<II", 1, 5),
            id="lying-length",
        ),
        pytest.param(
            # Method length 50 with a 3-byte payload.
            struct.pack("<BBI", 0x15, CODEC_JSON, 3)
            + struct.pack("<I", zlib.crc32(struct.pack("<BBI", 0x15, CODEC_JSON, 3)))
            + b"\x00\x00"
            + struct.pack("<II", 1, 50)
            + b"abc",
            id="method-beyond-payload",
        ),
        pytest.param(
            # One option word instead of two.
            struct.pack("<BBI", 0x14, CODEC_JSON, 2)
            + struct.pack("<I", zlib.crc32(struct.pack("<BBI", 0x14, CODEC_JSON, 2)))
            + b"\x00\x00"
            + struct.pack("<I", 1)
            + b"[]",
            id="one-option",
        ),
    ],
)
async def test_untrusted_frame_closes_only_its_connection(bad_frame: bytes) -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        async with await RPCClient.connect(address) as bystander:
            assert (await bystander.call("s3.ListBuckets"))["default"] == "uploads"
            attacker = await open_stream(address)
            await attacker.send_all(bad_frame)
            await assert_closed(attacker)
            assert (await bystander.call("s3.ListBuckets"))["default"] == "uploads"


async def test_bad_calls_get_error_answers_and_the_connection_stays_usable() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        async with await RPCClient.connect(address) as rpc:
            with pytest.raises(RemoteError) as unknown:
                await rpc.call("s3.ListBucket")
            assert unknown.value.code == "METHOD_NOT_FOUND"
            assert "s3.ListBuckets" in unknown.value.text
            with pytest.raises(RemoteError) as missing:
                await rpc.call("s3.Write", {"bucket": "uploads", "content": "aGk="})
            assert missing.value.code == "INVALID_REQUEST"
            assert "pathname" in missing.value.text
            with pytest.raises(RemoteError) as base64_error:
                await rpc.call("s3.Write", {"pathname": "a.txt", "content": "%%%"})
            assert base64_error.value.code == "INVALID_REQUEST"
            assert "content" in base64_error.value.text and "base64" in base64_error.value.text
            with pytest.raises(RemoteError) as mistyped:
                await rpc.call("s3.ListObjects", {"max_keys": "ten"})
            assert mistyped.value.code == "INVALID_REQUEST"
            assert "max_keys" in mistyped.value.text
            with pytest.raises(RemoteError) as no_bucket:
                await rpc.call("s3.Exists", {"bucket": "nope", "pathname": "a"})
            assert no_bucket.value.text == "BUCKET_NOT_FOUND: Bucket not found (bucket: nope)"
            with pytest.raises(RemoteError) as bad_path:
                await rpc.call("s3.Exists", {"pathname": "a/../b"})
            assert bad_path.value.code == "INVALID_PATHNAME"
            assert (await rpc.call("s3.ListBuckets"))["default"] == "uploads"


async def test_undecodable_argument_and_unsupported_codec_are_error_answers() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        stream = await open_stream(address)
        await stream.send_all(
            encode_rpc_request(1, "s3.ListBuckets", CODEC_JSON, b"{not json")
            + encode_rpc_request(2, "s3.ListBuckets", CODEC_GOB, b"\x01\x02")
            + encode_rpc_request(3, "s3.ListBuckets", CODEC_MSGPACK, msgpack.packb([]))
        )
        answers = sorted(await read_answers(stream, 3), key=lambda a: a[1])
        flags, _, text = answers[0]
        assert flags & FLAG_ERROR and text.startswith(b"INVALID_REQUEST: ")
        flags, _, text = answers[1]
        assert flags & FLAG_ERROR and b"gob" in text.lower()
        assert flags & CODEC_GOB  # the answer keeps the request's codec flag
        flags, _, body = answers[2]
        assert not flags & FLAG_ERROR
        assert msgpack.unpackb(body)["default"] == "uploads"
        await stream.aclose()


def _write_of_size(size: int, config: dict[str, str]) -> bytes:
    """A msgpack s3.Write argument of exactly ``size`` bytes (its content pads it)."""
    padding = size
    while True:
        body: bytes = msgpack.packb(
            {"pathname": "a.txt", "content": b"x" * padding, "config": config}
        )
        if len(body) == size:
            return body
        padding -= len(body) - size


async def test_an_argument_from_large_argument_bytes_on_is_counted_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The size check the dispatcher makes before anything else: an argument of
    LARGE_ARGUMENT bytes holding many values is counted off the event loop and refused
    past the bound; one a byte smaller is decoded on the loop, uncounted (so small
    calls pay nothing for the bound)."""
    monkeypatch.setattr(bounds, "MAX_MAP_ENTRIES", 2500)
    on_main_thread: list[bool] = []

    def counted(codec: int, body: bytes) -> None:
        on_main_thread.append(threading.current_thread() is threading.main_thread())
        bounds.check_counts(codec, body)

    monkeypatch.setattr(dispatch, "check_counts", counted)
    config = {f"k{index:04}": "" for index in range(3000)}  # past MANY_VALUES and the bound
    large = _write_of_size(dispatch.LARGE_ARGUMENT, config)
    smaller = _write_of_size(dispatch.LARGE_ARGUMENT - 1, config)
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        stream = await open_stream(address)
        await stream.send_all(encode_rpc_request(1, "s3.Write", CODEC_MSGPACK, large))
        ((flags, _, text),) = await read_answers(stream, 1)
        assert flags & FLAG_ERROR
        assert text.startswith(b"INVALID_REQUEST: cannot decode arguments: ")
        assert b"map entries" in text
        assert on_main_thread == [False]
        await stream.send_all(encode_rpc_request(2, "s3.Write", CODEC_MSGPACK, smaller))
        ((flags, _, text),) = await read_answers(stream, 1)
        assert flags & FLAG_ERROR  # the metadata is past S3's 2 KB
        assert b"map entries" not in text
        assert on_main_thread == [False]
        await stream.aclose()


def _request_with_raw_method(seq: int, name: bytes, codec: int, body: bytes) -> bytes:
    """A request frame whose method name is ``name`` as it is, valid UTF-8 or not."""
    payload = name + body
    head = struct.pack("<BBI", 0x15, codec, len(payload))
    return (
        head
        + struct.pack("<I", zlib.crc32(head))
        + b"\x00\x00"
        + struct.pack("<II", seq, len(name))
        + payload
    )


async def test_an_invalid_utf8_method_name_is_answered_on_its_seq_and_the_connection_kept() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        stream = await open_stream(address)
        await stream.send_all(
            encode_rpc_request(1, "s3.ListBuckets", CODEC_JSON, b"[]")
            + _request_with_raw_method(2, b"s3.List\xffBuckets", CODEC_JSON, b"[]")
            + _request_with_raw_method(3, b"s3.\xc3", CODEC_MSGPACK, b"\x80")
            + encode_rpc_request(4, "s3.ListBuckets", CODEC_MSGPACK, b"\x80")
        )
        answers = {seq: (flags, body) for flags, seq, body in await read_answers(stream, 4)}
        assert sorted(answers) == [1, 2, 3, 4]
        for seq in (2, 3):
            flags, text = answers[seq]
            assert flags & FLAG_ERROR
            assert text.startswith(b"INVALID_REQUEST: the method name is not valid UTF-8")
        assert not answers[1][0] & FLAG_ERROR and not answers[4][0] & FLAG_ERROR
        await stream.send_all(encode_rpc_request(5, "s3.ListBuckets", CODEC_JSON, b"[]"))
        ((flags, seq, body),) = await read_answers(stream, 1)
        assert (seq, flags & FLAG_ERROR) == (5, 0) and json.loads(body)["default"] == "uploads"
        await stream.aclose()


async def test_unix_socket_mode_stale_file_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "rpc.sock"
    # A stale socket file, as a crashed server leaves behind.
    import socket

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.exists()
    async with running_app(config_dict(buckets=BUCKETS, listen=f"unix://{path}")) as (_, address):
        assert address == f"unix://{path}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        async with await RPCClient.connect(address) as rpc:
            assert (await rpc.call("s3.ListBuckets"))["buckets"] == ["avatars", "uploads"]
    assert not path.exists()


async def test_unix_socket_refuses_to_replace_a_live_server(tmp_path: Path) -> None:
    path = tmp_path / "rpc.sock"
    config = config_dict(buckets=BUCKETS, listen=f"unix://{path}")
    async with running_app(config):
        with pytest.raises(RPCError, match="another server is listening") as refused:
            async with running_app(config):
                pass
        assert refused.value.code is ErrorCode.INVALID_CONFIG
        assert path.exists()


async def test_shutdown_lets_in_flight_calls_finish() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        add_sleep_method(app)
        async with await RPCClient.connect(address) as rpc:
            async with trio.open_nursery() as nursery:
                answers: list[object] = []

                async def slow_call() -> None:
                    answers.append(await rpc.call("test.Sleep", {"seconds": 0.5, "tag": "done"}))

                nursery.start_soon(slow_call)
                await trio.sleep(0.1)
                app.request_shutdown()
                # New connections are refused at once.
                await trio.sleep(0.05)
                with pytest.raises(OSError):
                    await open_stream(address)
            assert answers == [{"tag": "done"}]


async def test_shutdown_deadline_cancels_and_answers_shutting_down() -> None:
    config = config_dict(buckets=BUCKETS, s3={"shutdown_timeout": "300ms"})
    async with running_app(config) as (app, address):
        add_sleep_method(app)
        async with await RPCClient.connect(address) as rpc:
            async with trio.open_nursery() as nursery:
                errors: list[RemoteError] = []

                async def endless_call() -> None:
                    try:
                        await rpc.call("test.Sleep", {"seconds": 60})
                    except RemoteError as exc:
                        errors.append(exc)

                nursery.start_soon(endless_call)
                await trio.sleep(0.1)
                app.request_shutdown()
            # Not the 60 s call's answer: the grace period ended it.
            assert [e.code for e in errors] == ["SHUTTING_DOWN"]
