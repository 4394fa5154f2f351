"""Messages between the processes of one service: typed records both ways, over a
real unix socket; a message a peer got wrong is refused naming the field."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_s3rpc.cluster import wire
from trio_s3rpc.errors import RPCError
from trio_s3rpc.rpc.typed import TransferStatusResponse

STATUS = TransferStatusResponse("running", 5, 10, 1, 2, 1_700_000_000, "s3.WriteFile")


async def answer(request: Any) -> Any:
    if isinstance(request, wire.Hello):
        return wire.Joined([wire.Registration("tenant", {"bucket": "b", "part_size": 8 << 20})])
    if isinstance(request, wire.TransferStatusQuery):
        return wire.Found(status=STATUS if request.transfer_id == "t1" else None)
    if isinstance(request, wire.ActiveUploadsQuery):
        return wire.ActiveUploads(["u1", "u2"], [wire.BeingCreated("bkt", "inbox/a.bin")])
    return wire.Done()


async def test_requests_and_answers_arrive_as_the_records_sent(tmp_path: Path) -> None:
    path = str(tmp_path / "peer.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(wire.serve, path, answer)
        joined = await wire.ask(path, wire.Hello(0), wire.Joined)
        assert joined == wire.Joined(
            [wire.Registration("tenant", {"bucket": "b", "part_size": 8 << 20})]
        )
        found = await wire.ask(path, wire.TransferStatusQuery("t1"), wire.Found)
        assert found.status == STATUS
        missing = await wire.ask(path, wire.TransferStatusQuery("t2"), wire.Found)
        assert missing.status is None
        uploads = await wire.ask(path, wire.ActiveUploadsQuery(), wire.ActiveUploads)
        assert uploads.upload_ids == ["u1", "u2"]
        assert uploads.creating == [wire.BeingCreated("bkt", "inbox/a.bin")]
        assert await wire.ask(path, wire.Ready(1, 42, "tcp://127.0.0.1:1"), wire.Done) == (
            wire.Done()
        )
        nursery.cancel_scope.cancel()


async def raw_ask(path: str, message: dict[str, Any]) -> dict[str, Any]:
    stream = await trio.open_unix_socket(path)
    async with stream:
        body = json.dumps(message).encode()
        await stream.send_all(struct.pack(">I", len(body)) + body)
        return await wire.receive_message(stream)


@pytest.mark.parametrize(
    ("message", "named"),
    [
        ({"op": "hello", "slot": "zero"}, "field 'slot' must be an integer"),
        ({"op": "ready", "slot": 0, "pid": 1}, "missing required field 'address'"),
        (
            {"op": "apply_bucket", "name": "x", "settings": {"part_size": [1]}},
            "entry 'part_size' must be a string or an integer",
        ),
        ({"op": "format_disk"}, "unknown peer request 'format_disk'"),
    ],
)
async def test_a_malformed_request_is_refused_naming_what_is_wrong(
    tmp_path: Path, message: dict[str, Any], named: str
) -> None:
    path = str(tmp_path / "peer.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(wire.serve, path, answer)
        reply = await raw_ask(path, message)
        assert reply["ok"] is False and reply["code"] == "INVALID_REQUEST"
        assert named in reply["message"]
        nursery.cancel_scope.cancel()


async def test_a_malformed_answer_is_refused_too(tmp_path: Path) -> None:
    async def wrong(request: Any) -> Any:
        return wire.ActiveUploads(["u1"])  # not what a Hello is answered with

    path = str(tmp_path / "peer.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(wire.serve, path, wrong)
        with pytest.raises(RPCError, match="missing required field 'buckets'") as refused:
            await wire.ask(path, wire.Hello(0), wire.Joined)
        assert refused.value.code.name == "INVALID_REQUEST"
        nursery.cancel_scope.cancel()


async def test_an_active_uploads_answer_without_creating_means_none_being_created(
    tmp_path: Path,
) -> None:
    """A worker of before 0.2.0 answers only ids (a supervisor may restart a worker after
    an upgrade on disk, beside older ones)."""
    path = str(tmp_path / "old.sock")
    listener = trio.socket.socket(trio.socket.AF_UNIX)
    await listener.bind(path)
    listener.listen(1)

    async def older_worker() -> None:
        conn, _ = await listener.accept()
        stream = trio.SocketStream(conn)
        async with stream:
            assert (await wire.receive_message(stream))["op"] == "active_uploads"
            await wire.send_message(stream, {"ok": True, "upload_ids": ["u1"]})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(older_worker)
        answer = await wire.ask(path, wire.ActiveUploadsQuery(), wire.ActiveUploads)
    listener.close()
    assert answer == wire.ActiveUploads(["u1"], [])
