"""Copy and Move between two storage services: SeaweedFS and moto, configured as two servers.

S3's CopyObject works only inside one service, so a copy between them is
streamed through the server: ranged GETs from the source (conditional on its
ETag) feed a multipart upload to the destination. Each test checks what a
user would: the bytes that arrived (read back with a plain botocore client),
the checksum, the server's memory, and what each service holds afterwards,
including no unfinished multipart upload.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c
import pytest
import trio

from benchmarks.procstat import PeakMemory
from tests.support.proxy import TCPProxy
from tests.support.server import endpoint_server, running_app
from tests.support.services import admin_client
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB
WEED_BUCKET = "test-bucket"
MOTO_BUCKET = "acl-bucket"


@dataclass(slots=True)
class TwoServices:
    rpc: RPCClient
    watcher: RPCClient
    weed: Any  # botocore clients that see what really landed
    moto: Any
    prefix: str
    root: Path
    moto_proxy: TCPProxy
    app: Any


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def checksum_of(data: bytes) -> str:
    return f"crc32c:{crc32c.crc32c(data):08x}"


def open_uploads(client: Any, bucket: str, prefix: str) -> list[str]:
    answer = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def exists(client: Any, bucket: str, key: str) -> bool:
    return bool(client.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"))


def object_sha256(client: Any, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    while block := body.read(8 * MIB):
        digest.update(block)
    return digest.hexdigest()


def make_file(path: Path, size: int) -> tuple[str, str]:
    """Random bytes on disk; their SHA-256 and CRC32C checksum, without holding them."""
    digest, crc = hashlib.sha256(), 0
    block = secrets.token_bytes(4 * MIB)
    with path.open("wb") as out:
        for start in range(0, size, len(block)):
            piece = block[: min(len(block), size - start)]
            # Each block differs from the last, so no part repeats another.
            piece = start.to_bytes(8, "big") + piece[8:] if len(piece) >= 8 else piece
            out.write(piece)
            digest.update(piece)
            crc = crc32c.crc32c(piece, crc)
    return digest.hexdigest(), f"crc32c:{crc:08x}"


@asynccontextmanager
async def two_services(
    seaweedfs: Any,
    moto: Any,
    root: Path,
    *,
    part_size: int = PART,
    concurrency: int = 3,
    moto_bucket: dict[str, Any] | None = None,
    moto_server: dict[str, Any] | None = None,
) -> AsyncIterator[TwoServices]:
    """The server with bucket ``weed`` on SeaweedFS and ``moto`` on moto (through a proxy)."""
    prefix = f"xcp-{secrets.token_hex(4)}/"
    host, port = moto.endpoint.removeprefix("http://").rsplit(":", 1)
    proxy = TCPProxy(host, int(port))
    async with trio.open_nursery() as nursery:
        proxy_port = await proxy.start(nursery)
        common = {"prefix": prefix, "part_size": part_size, "concurrency": concurrency}
        config = {
            "rpc": {"listen": "tcp://127.0.0.1:0"},
            "s3": {
                "default": "weed",
                "local_roots": [str(root)],
                "servers": {
                    "seaweedfs": endpoint_server(seaweedfs),
                    "moto": {
                        **endpoint_server(moto),
                        **(moto_server or {}),
                        "endpoint": f"http://127.0.0.1:{proxy_port}",
                    },
                },
                "buckets": {
                    "weed": {
                        "server": "seaweedfs",
                        "bucket": WEED_BUCKET,
                        "visibility_mode": "none",
                        **common,
                    },
                    "moto": {
                        "server": "moto",
                        "bucket": MOTO_BUCKET,
                        "visibility_mode": "acl",
                        **common,
                        **(moto_bucket or {}),
                    },
                },
            },
        }
        async with (
            running_app(config) as (app, address),
            await RPCClient.connect(address) as rpc,
            await RPCClient.connect(address) as watcher,
        ):
            yield TwoServices(
                rpc, watcher, admin_client(seaweedfs), admin_client(moto), prefix, root, proxy, app
            )
        nursery.cancel_scope.cancel()


def copy_args(source: str, source_path: str, dest: str, dest_path: str, **more: Any) -> Any:
    return {
        "source_bucket": source,
        "source_pathname": source_path,
        "dest_bucket": dest,
        "dest_pathname": dest_path,
        **more,
    }


async def wait_for_parts(watcher: RPCClient, transfer_id: str, parts: int) -> dict[str, Any]:
    """Poll TransferStatus until the transfer has sent ``parts`` parts."""
    with trio.fail_after(120):
        while True:
            await trio.sleep(0.02)
            try:
                status = await watcher.call("s3.TransferStatus", {"transfer_id": transfer_id})
            except RemoteError:
                continue  # not registered yet
            if status["parts_done"] >= parts or status["state"] != "running":
                return dict(status)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


async def test_300_mib_copy_and_move_between_services_byte_exact_in_bounded_memory(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    part_size, concurrency = 16 * MIB, 4
    size = 300 * MIB + 12_345
    sha256, checksum = make_file(root / "big.bin", size)
    bound = part_size * (concurrency + 2) + 32 * MIB
    async with two_services(
        seaweedfs, moto, root, part_size=part_size, concurrency=concurrency
    ) as s:
        written = await s.rpc.call(
            "s3.WriteFile", {"pathname": "big.bin", "source_path": str(root / "big.bin")}
        )
        assert written["checksum"] == checksum
        os.unlink(root / "big.bin")

        with PeakMemory(os.getpid()) as copy_memory:
            copied = await s.rpc.call(
                "s3.Copy", copy_args("weed", "big.bin", "moto", "archive/big.bin")
            )
        assert copied == {
            "success": True,
            "pathname": "archive/big.bin",
            "size": size,
            "last_modified": copied["last_modified"],
            "checksum": checksum,
        }
        assert copy_memory.growth <= bound, (copy_memory.growth / MIB, bound / MIB)
        assert object_sha256(s.moto, MOTO_BUCKET, s.prefix + "archive/big.bin") == sha256
        head = s.moto.head_object(Bucket=MOTO_BUCKET, Key=s.prefix + "archive/big.bin")
        assert head["Metadata"]["trio-s3rpc-checksum"] == checksum
        assert head["ContentType"] == "application/octet-stream"
        assert exists(s.weed, WEED_BUCKET, s.prefix + "big.bin")  # a copy keeps its source

        with PeakMemory(os.getpid()) as move_memory:
            moved = await s.rpc.call(
                "s3.Move", copy_args("moto", "archive/big.bin", "weed", "back/big.bin")
            )
        assert moved["size"] == size and moved["checksum"] == checksum
        assert move_memory.growth <= bound, (move_memory.growth / MIB, bound / MIB)
        assert object_sha256(s.weed, WEED_BUCKET, s.prefix + "back/big.bin") == sha256
        assert not exists(s.moto, MOTO_BUCKET, s.prefix + "archive/big.bin")
        metadata = await s.rpc.call("s3.GetMetadata", {"pathname": "back/big.bin"})
        assert metadata["checksum"] == checksum
        assert open_uploads(s.moto, MOTO_BUCKET, s.prefix) == []
        assert open_uploads(s.weed, WEED_BUCKET, s.prefix) == []


async def test_metadata_and_visibility_carry_over_or_are_replaced(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    data = secrets.token_bytes(3 * PART + 17)  # multipart at the destination
    async with two_services(seaweedfs, moto, root) as s:
        s.moto.put_object(
            Bucket=MOTO_BUCKET,
            Key=s.prefix + "report",
            Body=data,
            ContentType="application/pdf",
            CacheControl="max-age=60",
            ContentDisposition='attachment; filename="report.pdf"',
            Metadata={"author": "ann"},
        )
        copied = await s.rpc.call("s3.Copy", copy_args("moto", "report", "weed", "r1"))
        # Written by something else: the checksum computed on the way is stored from now on.
        assert copied["checksum"] == checksum_of(data)
        head = s.weed.head_object(Bucket=WEED_BUCKET, Key=s.prefix + "r1")
        assert head["ContentType"] == "application/pdf"
        assert head["CacheControl"] == "max-age=60"
        assert head["ContentDisposition"] == 'attachment; filename="report.pdf"'
        assert head["Metadata"] == {"author": "ann", "trio-s3rpc-checksum": checksum_of(data)}
        assert (
            object_sha256(s.weed, WEED_BUCKET, s.prefix + "r1") == hashlib.sha256(data).hexdigest()
        )
        # A standard header the call sets replaces the source's; the others carry over.
        await s.rpc.call(
            "s3.Copy", copy_args("moto", "report", "weed", "r2", cache_control="no-store")
        )
        head = s.weed.head_object(Bucket=WEED_BUCKET, Key=s.prefix + "r2")
        assert head["CacheControl"] == "no-store"
        assert head["ContentDisposition"] == 'attachment; filename="report.pdf"'

        # Our own object, copied to moto with new metadata and a visibility moto can keep.
        small = b"small and public"
        await s.rpc.call("s3.Write", {"pathname": "s.txt", "content": "c21hbGwgYW5kIHB1YmxpYw=="})
        copied = await s.rpc.call(
            "s3.Copy",
            copy_args("weed", "s.txt", "moto", "s2.txt", config={"k": "v"}, visibility="public"),
        )
        assert copied["checksum"] == checksum_of(small)
        head = s.moto.head_object(Bucket=MOTO_BUCKET, Key=s.prefix + "s2.txt")
        assert head["Metadata"] == {"k": "v", "trio-s3rpc-checksum": checksum_of(small)}
        assert head["ContentType"] == "text/plain"
        meta = await s.rpc.call("s3.GetMetadata", {"bucket": "moto", "pathname": "s2.txt"})
        assert meta["visibility"] == "public"

        # An empty object is copied too (no range to read).
        s.weed.put_object(Bucket=WEED_BUCKET, Key=s.prefix + "empty", Body=b"")
        copied = await s.rpc.call("s3.Copy", copy_args("weed", "empty", "moto", "empty"))
        assert (copied["size"], copied["checksum"]) == (0, checksum_of(b""))
        assert s.moto.get_object(Bucket=MOTO_BUCKET, Key=s.prefix + "empty")["Body"].read() == b""

        # SeaweedFS keeps no ACLs: asking it for the other visibility is refused up front.
        with pytest.raises(RemoteError) as error:
            await s.rpc.call(
                "s3.Copy", copy_args("moto", "s2.txt", "weed", "s3.txt", visibility="public")
            )
        assert error.value.code == "INVALID_VISIBILITY"
        assert not exists(s.weed, WEED_BUCKET, s.prefix + "s3.txt")


async def test_a_source_changed_mid_copy_fails_and_leaves_nothing(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    data = secrets.token_bytes(12 * PART)
    async with two_services(seaweedfs, moto, root, concurrency=1) as s:
        s.weed.put_object(Bucket=WEED_BUCKET, Key=s.prefix + "live.bin", Body=data)
        errors: list[RemoteError] = []
        async with trio.open_nursery() as nursery:

            async def copy() -> None:
                try:
                    await s.rpc.call(
                        "s3.Copy",
                        copy_args("weed", "live.bin", "moto", "live.bin", transfer_id="live"),
                    )
                except RemoteError as exc:
                    errors.append(exc)

            nursery.start_soon(copy)
            status = await wait_for_parts(s.watcher, "live", 1)
            assert status["state"] == "running"
            await trio.to_thread.run_sync(
                lambda: s.weed.put_object(
                    Bucket=WEED_BUCKET, Key=s.prefix + "live.bin", Body=b"replaced"
                )
            )
        assert [e.code for e in errors] == ["S3_OPERATION_FAILED"]
        assert "changed" in errors[0].text and "live.bin" in errors[0].text
        assert not exists(s.moto, MOTO_BUCKET, s.prefix + "live.bin")
        assert open_uploads(s.moto, MOTO_BUCKET, s.prefix) == []
        final = await s.watcher.call("s3.TransferStatus", {"transfer_id": "live"})
        assert final["state"] == "failed"


@pytest.mark.parametrize("size", [1000, 3 * PART + 1])
async def test_a_corrupted_source_is_refused_and_move_leaves_it(
    seaweedfs: Any, moto: Any, root: Path, size: int
) -> None:
    data = secrets.token_bytes(size)
    async with two_services(seaweedfs, moto, root) as s:
        await s.rpc.call("s3.Write", {"pathname": "c.bin", "content": _b64(data)})
        # Rewrite the bytes behind the server's back, keeping the stored checksum.
        key = s.prefix + "c.bin"
        head = s.weed.head_object(Bucket=WEED_BUCKET, Key=key)
        corrupted = bytes([data[0] ^ 0xFF]) + data[1:]
        s.weed.put_object(Bucket=WEED_BUCKET, Key=key, Body=corrupted, Metadata=head["Metadata"])
        for method in ("s3.Copy", "s3.Move"):
            with pytest.raises(RemoteError) as error:
                await s.rpc.call(method, copy_args("weed", "c.bin", "moto", "c.bin"))
            assert error.value.code == "S3_OPERATION_FAILED", method
            assert "checksum mismatch" in error.value.text
            assert not exists(s.moto, MOTO_BUCKET, s.prefix + "c.bin"), method
        assert "the source is untouched" in error.value.text
        assert "nothing was left at the destination" in error.value.text
        assert s.weed.get_object(Bucket=WEED_BUCKET, Key=key)["Body"].read() == corrupted
        assert open_uploads(s.moto, MOTO_BUCKET, s.prefix) == []


async def test_the_destination_failing_mid_move_leaves_the_source_and_no_upload(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    data = secrets.token_bytes(6 * PART)
    async with two_services(seaweedfs, moto, root) as s:
        for transport in s.app.storage._transports.values():
            transport.retry_attempts = 2
        await s.rpc.call("s3.Write", {"pathname": "m.bin", "content": _b64(data)})
        # Every connection to moto carrying more than 1 MiB is cut: parts fail,
        # while the small create and abort requests get through.
        s.moto_proxy.cut_after_bytes = MIB
        with pytest.raises(RemoteError) as error:
            await s.rpc.call("s3.Move", copy_args("weed", "m.bin", "moto", "m.bin"))
        s.moto_proxy.cut_after_bytes = None
        assert error.value.code == "S3_OPERATION_FAILED"
        assert "the source is untouched" in error.value.text
        assert s.weed.get_object(Bucket=WEED_BUCKET, Key=s.prefix + "m.bin")["Body"].read() == data
        assert not exists(s.moto, MOTO_BUCKET, s.prefix + "m.bin")
        assert open_uploads(s.moto, MOTO_BUCKET, s.prefix) == []
        assert any(r.startswith(b"DELETE ") and b"uploadId=" in r for r in s.moto_proxy.requests)


async def test_cancel_mid_copy_leaves_nothing(seaweedfs: Any, moto: Any, root: Path) -> None:
    data = secrets.token_bytes(12 * PART)
    async with two_services(seaweedfs, moto, root, concurrency=1) as s:
        s.weed.put_object(Bucket=WEED_BUCKET, Key=s.prefix + "x.bin", Body=data)
        errors: list[RemoteError] = []
        async with trio.open_nursery() as nursery:

            async def move() -> None:
                try:
                    await s.rpc.call(
                        "s3.Move", copy_args("weed", "x.bin", "moto", "x.bin", transfer_id="mv")
                    )
                except RemoteError as exc:
                    errors.append(exc)

            nursery.start_soon(move)
            status = await wait_for_parts(s.watcher, "mv", 1)
            assert status["state"] == "running"
            assert status["bytes_total"] == len(data)
            assert status["parts_total"] == 12
            assert open_uploads(s.moto, MOTO_BUCKET, s.prefix) == [s.prefix + "x.bin"]
            await s.watcher.call("s3.Cancel", {"transfer_id": "mv"})
        assert [e.code for e in errors] == ["CANCELLED"]
        assert open_uploads(s.moto, MOTO_BUCKET, s.prefix) == []
        assert not exists(s.moto, MOTO_BUCKET, s.prefix + "x.bin")
        assert s.weed.get_object(Bucket=WEED_BUCKET, Key=s.prefix + "x.bin")["Body"].read() == data


async def test_parts_cut_mid_send_are_read_again_and_the_copy_is_whole(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    """A piped part whose UploadPart is cut is retried with its range read anew."""
    data = secrets.token_bytes(10 * PART + 99)
    async with two_services(seaweedfs, moto, root, concurrency=2) as s:
        s.weed.put_object(Bucket=WEED_BUCKET, Key=s.prefix + "cut.bin", Body=data)
        answers: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def copy() -> None:
                answers.append(
                    await s.rpc.call(
                        "s3.Copy",
                        copy_args("weed", "cut.bin", "moto", "cut.bin", transfer_id="cut"),
                    )
                )

            nursery.start_soon(copy)
            await wait_for_parts(s.watcher, "cut", 1)

            def resent() -> bool:
                sent = [r.split(b" ")[1] for r in s.moto_proxy.requests if b"partNumber=" in r]
                return len(sent) > len(set(sent))

            with trio.fail_after(60):
                while not resent() and not answers:
                    s.moto_proxy.cut_all()  # the parts in flight fail mid-body
                    await trio.sleep(0.2)
        assert resent(), "no part was cut and sent again"
        assert answers[0]["size"] == len(data)
        assert object_sha256(s.moto, MOTO_BUCKET, s.prefix + "cut.bin") == (
            hashlib.sha256(data).hexdigest()
        )
        assert open_uploads(s.moto, MOTO_BUCKET, s.prefix) == []


async def test_a_copy_past_its_timeout_leaves_nothing(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    data = secrets.token_bytes(12 * PART)
    async with two_services(seaweedfs, moto, root, concurrency=1) as s:
        s.weed.put_object(Bucket=WEED_BUCKET, Key=s.prefix + "t.bin", Body=data)
        with pytest.raises(RemoteError) as error:
            await s.rpc.call("s3.Move", copy_args("weed", "t.bin", "moto", "t.bin", timeout=0.3))
        assert error.value.code == "OPERATION_TIMEOUT"
        assert open_uploads(s.moto, MOTO_BUCKET, s.prefix) == []
        assert not exists(s.moto, MOTO_BUCKET, s.prefix + "t.bin")
        assert exists(s.weed, WEED_BUCKET, s.prefix + "t.bin")


async def test_under_when_supported_each_part_carries_its_checksum(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    """The part's CRC32C must precede its bytes in a header: parts are read whole first."""
    data = secrets.token_bytes(3 * PART + 5)
    async with two_services(
        seaweedfs, moto, root, moto_server={"checksums": "when_supported"}
    ) as s:
        await s.rpc.call("s3.Write", {"pathname": "ws.bin", "content": _b64(data)})
        before = len(s.moto_proxy.requests)
        copied = await s.rpc.call("s3.Copy", copy_args("weed", "ws.bin", "moto", "ws.bin"))
        assert copied["checksum"] == checksum_of(data)
        parts = [
            r
            for r in s.moto_proxy.requests[before:]
            if r.startswith(b"PUT ") and b"partNumber=" in r
        ]
        assert len(parts) == 4
        assert all(b"x-amz-checksum-crc32c: " in r.lower() for r in parts)
        assert object_sha256(s.moto, MOTO_BUCKET, s.prefix + "ws.bin") == (
            hashlib.sha256(data).hexdigest()
        )


async def test_same_server_copies_stay_on_the_service(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    """Between two buckets of one server the bytes never pass through us: CopyObject."""
    async with two_services(seaweedfs, moto, root) as s:
        s.moto.put_object(Bucket=MOTO_BUCKET, Key=s.prefix + "a.bin", Body=b"a" * 1000)
        before = len(s.moto_proxy.requests)
        await s.rpc.call("s3.Copy", copy_args("moto", "a.bin", "moto", "b.bin"))
        sent = s.moto_proxy.requests[before:]
        assert any(b"x-amz-copy-source:" in r.lower() for r in sent)
        assert not any(r.startswith(b"GET ") and b"a.bin" in r.split(b"\r\n")[0] for r in sent)
        assert s.moto.get_object(Bucket=MOTO_BUCKET, Key=s.prefix + "b.bin")["Body"].read() == (
            b"a" * 1000
        )


async def test_a_source_body_cut_mid_range_resumes_and_the_copy_is_whole(
    seaweedfs: Any, moto: Any, root: Path
) -> None:
    """The source (moto, behind the proxy) breaks one range's body: the copy resumes it
    from the byte reached, on the same ETag, and the object and its checksum are whole."""
    sha, checksum = make_file(root / "src.bin", 2 * PART + 777)
    async with two_services(seaweedfs, moto, root, concurrency=1) as s:
        written = await s.rpc.call(
            "s3.WriteFile",
            {"bucket": "moto", "pathname": "src.bin", "source_path": str(root / "src.bin")},
        )
        assert written["checksum"] == checksum
        s.moto_proxy.requests.clear()
        s.moto_proxy.cut_responses_after_bytes = 3 * MIB
        s.moto_proxy.cuts_left = 1
        answer = await s.rpc.call("s3.Copy", copy_args("moto", "src.bin", "weed", "dst.bin"))
        assert s.moto_proxy.cuts_left == 0, "nothing was cut"
        assert answer["size"] == 2 * PART + 777 and answer["checksum"] == checksum
        assert object_sha256(s.weed, WEED_BUCKET, s.prefix + "dst.bin") == sha
        gets = [r for r in s.moto_proxy.requests if r.startswith(b"GET ") and b"ange:" in r]
        etags = {
            line for r in gets for line in r.split(b"\r\n") if line.lower().startswith(b"if-match:")
        }
        assert len(gets) == 4 and len(etags) == 1  # three ranges, one of them resumed
        assert open_uploads(s.weed, WEED_BUCKET, s.prefix) == []
