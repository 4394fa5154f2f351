"""Large files end to end against SeaweedFS: WriteFile, ReadFile, chunked uploads.

Objects several times ``part_size`` (5 MiB, S3's minimum) go through the
multipart paths; faults are injected with a TCP proxy between the server and
SeaweedFS, and the service itself is asked afterwards whether any multipart
upload was left open.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import crc32c
import pytest
import trio

from tests.support.proxy import TCPProxy
from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import admin_client, open_uploads
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def prefix() -> str:
    return f"tr-{secrets.token_hex(4)}/"


def transfer_config(
    server: dict[str, Any], prefix: str, root: Path, **bucket: Any
) -> dict[str, Any]:
    return config_dict(
        server,
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": prefix,
                "visibility_mode": "none",
                "part_size": PART,
                "concurrency": 3,
                **bucket,
            }
        },
        s3={"local_roots": [str(root)], "upload_idle_timeout": "2s"},
    )


@pytest.fixture
async def rpc(seaweedfs: Any, prefix: str, roots: Path) -> AsyncIterator[RPCClient]:
    config = transfer_config(endpoint_server(seaweedfs), prefix, roots)
    async with running_app(config) as (_, address), await RPCClient.connect(address) as client:
        yield client


async def test_write_file_and_read_file_round_trip_byte_identical(
    rpc: RPCClient, roots: Path, seaweedfs: Any, prefix: str
) -> None:
    source = roots / "video.mp4"
    data = secrets.token_bytes(3 * PART + 12345)
    source.write_bytes(data)
    written = await rpc.call(
        "s3.WriteFile", {"pathname": "v/video.mp4", "source_path": str(source)}
    )
    assert written == {
        "success": True,
        "pathname": "v/video.mp4",
        "size": len(data),
        "last_modified": written["last_modified"],
        "checksum": "crc32c:" + format(crc32c.crc32c(data), "08x"),
    }
    head = admin_client(seaweedfs).head_object(Bucket="test-bucket", Key=prefix + "v/video.mp4")
    assert head["ETag"].strip('"').endswith("-4")
    assert head["ContentType"] == "video/mp4"

    destination = roots / "out" / "copy.mp4"
    destination.parent.mkdir()
    read = await rpc.call(
        "s3.ReadFile", {"pathname": "v/video.mp4", "destination_path": str(destination)}
    )
    assert read["success"] is True
    assert read["size"] == len(data)
    assert read["mime_type"] == "video/mp4"
    assert destination.read_bytes() == data
    assert sorted(p.name for p in destination.parent.iterdir()) == ["copy.mp4"]
    assert open_uploads(seaweedfs, prefix) == []


async def test_small_file_goes_in_one_request(rpc: RPCClient, roots: Path) -> None:
    source = roots / "note.txt"
    source.write_bytes(b"small")
    await rpc.call(
        "s3.WriteFile",
        {"pathname": "note.txt", "source_path": str(source), "content_type": "text/x-custom"},
    )
    destination = roots / "note-back.txt"
    read = await rpc.call(
        "s3.ReadFile", {"pathname": "note.txt", "destination_path": str(destination)}
    )
    assert read["mime_type"] == "text/x-custom"
    assert destination.read_bytes() == b"small"


async def test_read_file_replaces_an_existing_destination(rpc: RPCClient, roots: Path) -> None:
    await rpc.call("s3.Write", {"pathname": "r.txt", "content": b64(b"new")})
    destination = roots / "r.txt"
    destination.write_bytes(b"old content")
    await rpc.call("s3.ReadFile", {"pathname": "r.txt", "destination_path": str(destination)})
    assert destination.read_bytes() == b"new"


async def test_paths_outside_the_roots_are_refused(
    rpc: RPCClient, roots: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    escape = roots / "escape.txt"
    escape.symlink_to(outside)
    escape_dir = roots / "escape-dir"
    escape_dir.symlink_to(tmp_path)
    for path in [str(outside), str(escape), str(roots / ".." / "outside.txt"), "/etc/passwd"]:
        with pytest.raises(RemoteError) as error:
            await rpc.call("s3.WriteFile", {"pathname": "x.txt", "source_path": path})
        assert error.value.code == "PERMISSION_DENIED", path
        assert path in error.value.text
    await rpc.call("s3.Write", {"pathname": "x.txt", "content": b64(b"x")})
    for path in [str(tmp_path / "dest.txt"), str(escape_dir / "dest.txt"), str(escape)]:
        with pytest.raises(RemoteError) as error:
            await rpc.call("s3.ReadFile", {"pathname": "x.txt", "destination_path": path})
        assert error.value.code == "PERMISSION_DENIED", path
    assert outside.read_bytes() == b"secret"
    assert not (tmp_path / "dest.txt").exists()


async def test_missing_source_and_missing_object_are_clear(rpc: RPCClient, roots: Path) -> None:
    with pytest.raises(RemoteError) as error:
        await rpc.call("s3.WriteFile", {"pathname": "x", "source_path": str(roots / "none")})
    assert error.value.code == "FILE_NOT_FOUND"
    assert "source_path" in error.value.text
    destination = roots / "never.txt"
    with pytest.raises(RemoteError) as error:
        await rpc.call(
            "s3.ReadFile", {"pathname": "absent.txt", "destination_path": str(destination)}
        )
    assert error.value.code == "FILE_NOT_FOUND"
    assert list(roots.iterdir()) == []


@pytest.mark.parametrize("chunk_size", [1, 777_777, 3 * MIB + 1, PART, 11 * MIB + 3])
async def test_chunked_upload_with_odd_chunk_sizes(
    rpc: RPCClient, seaweedfs: Any, prefix: str, chunk_size: int
) -> None:
    total = 2 * PART + 333 if chunk_size > 1 else 1000
    data = secrets.token_bytes(total)
    upload_id = (await rpc.call("s3.UploadStart", {"pathname": f"chunked-{chunk_size}.bin"}))[
        "upload_id"
    ]
    sent = 0
    for start in range(0, total, chunk_size):
        chunk = data[start : start + chunk_size]
        answer = await rpc.call("s3.UploadChunk", {"upload_id": upload_id, "content": b64(chunk)})
        sent += len(chunk)
        assert answer == {"success": True, "size": sent}
    finished = await rpc.call("s3.UploadFinish", {"upload_id": upload_id, "size": total})
    assert finished["size"] == total
    assert finished["pathname"] == f"chunked-{chunk_size}.bin"
    read = await rpc.call("s3.Read", {"pathname": f"chunked-{chunk_size}.bin"})
    assert base64.b64decode(read["content"]) == data
    assert open_uploads(seaweedfs, prefix) == []
    with pytest.raises(RemoteError) as error:
        await rpc.call("s3.UploadChunk", {"upload_id": upload_id, "content": ""})
    assert error.value.code == "UPLOAD_NOT_FOUND"


async def test_chunked_upload_abort_and_idle_expiry_leave_nothing(
    rpc: RPCClient, seaweedfs: Any, prefix: str
) -> None:
    aborted = (await rpc.call("s3.UploadStart", {"pathname": "aborted.bin"}))["upload_id"]
    await rpc.call("s3.UploadChunk", {"upload_id": aborted, "content": b64(b"a" * (PART + 10))})
    assert open_uploads(seaweedfs, prefix) == [prefix + "aborted.bin"]
    assert (await rpc.call("s3.UploadAbort", {"upload_id": aborted}))["success"] is True
    assert open_uploads(seaweedfs, prefix) == []

    idle = (await rpc.call("s3.UploadStart", {"pathname": "idle.bin"}))["upload_id"]
    await rpc.call("s3.UploadChunk", {"upload_id": idle, "content": b64(b"i" * (PART + 10))})
    assert open_uploads(seaweedfs, prefix) == [prefix + "idle.bin"]
    await trio.sleep(3.5)  # upload_idle_timeout is 2 s here
    assert open_uploads(seaweedfs, prefix) == []
    with pytest.raises(RemoteError) as error:
        await rpc.call("s3.UploadFinish", {"upload_id": idle, "size": PART + 10})
    assert error.value.code == "UPLOAD_NOT_FOUND"
    assert (await rpc.call("s3.Exists", {"pathname": "idle.bin"}))["exists"] is False


async def test_part_failure_mid_upload_aborts_and_leaves_nothing(
    seaweedfs: Any, prefix: str, roots: Path
) -> None:
    host, port = seaweedfs.endpoint.removeprefix("http://").split(":")
    proxy = TCPProxy(host, int(port))
    async with trio.open_nursery() as nursery:
        proxy_port = await proxy.start(nursery)
        server = endpoint_server(seaweedfs)
        server["endpoint"] = f"http://127.0.0.1:{proxy_port}"
        config = transfer_config(server, prefix, roots)
        source = roots / "doomed.bin"
        source.write_bytes(secrets.token_bytes(3 * PART))
        async with running_app(config) as (app, address):
            for transport in app.storage._transports.values():
                transport.retry_attempts = 2
            async with await RPCClient.connect(address) as rpc:
                # Every connection that carries more than 1 MiB is cut: parts always
                # fail, while the small create/abort requests get through.
                proxy.cut_after_bytes = MIB
                with pytest.raises(RemoteError) as error:
                    await rpc.call(
                        "s3.WriteFile", {"pathname": "doomed.bin", "source_path": str(source)}
                    )
                assert error.value.code == "S3_OPERATION_FAILED"
                proxy.cut_after_bytes = None
                assert open_uploads(seaweedfs, prefix) == []
                assert any(r.startswith(b"DELETE ") and b"uploadId=" in r for r in proxy.requests)

                # A download cut mid-way leaves neither the destination nor a temporary file.
                await rpc.call(
                    "s3.WriteFile", {"pathname": "whole.bin", "source_path": str(source)}
                )
                destination = roots / "dl" / "whole.bin"
                destination.parent.mkdir()
                proxy.cut_after_bytes = 2000  # requests are small; cut the answers
                proxy.cut_responses_after_bytes = 2 * MIB
                with pytest.raises(RemoteError) as error:
                    await rpc.call(
                        "s3.ReadFile",
                        {"pathname": "whole.bin", "destination_path": str(destination)},
                    )
                # The cut may hit the HeadObject or a ranged GetObject.
                assert error.value.code == "S3_OPERATION_FAILED"
                assert "pathname: whole.bin" in error.value.text
                assert os.listdir(destination.parent) == []
        nursery.cancel_scope.cancel()


def _ranges_asked(proxy: TCPProxy) -> list[tuple[bytes, bytes]]:
    """(Range, If-Match) of every GetObject that went through the proxy."""
    asked = []
    for head in proxy.requests:
        if not head.startswith(b"GET ") or b"range:" not in head.lower():
            continue
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        fields = {name.strip().lower(): value.strip() for name, value in fields.items()}
        asked.append((fields[b"range"], fields[b"if-match"]))
    return asked


async def test_a_read_file_body_cut_mid_range_resumes_where_it_broke(
    seaweedfs: Any, prefix: str, roots: Path
) -> None:
    host, port = seaweedfs.endpoint.removeprefix("http://").split(":")
    proxy = TCPProxy(host, int(port))
    data = secrets.token_bytes(2 * PART + 12345)
    source = roots / "source.bin"
    source.write_bytes(data)
    async with trio.open_nursery() as nursery:
        proxy_port = await proxy.start(nursery)
        server = endpoint_server(seaweedfs)
        server["endpoint"] = f"http://127.0.0.1:{proxy_port}"
        config = transfer_config(server, prefix, roots, concurrency=1)
        async with running_app(config) as (_, address), await RPCClient.connect(address) as rpc:
            # Stored with its CRC32C, which ReadFile checks against the ranges' combined.
            written = await rpc.call(
                "s3.WriteFile", {"pathname": "cut.bin", "source_path": str(source)}
            )
            assert written["checksum"] == f"crc32c:{crc32c.crc32c(data):08x}"
            proxy.requests.clear()
            # The first connection whose answers pass 3 MiB is cut: the first range's body.
            proxy.cut_responses_after_bytes = 3 * MIB
            proxy.cuts_left = 1
            destination = roots / "cut.bin"
            answer = await rpc.call(
                "s3.ReadFile", {"pathname": "cut.bin", "destination_path": str(destination)}
            )
            assert proxy.cuts_left == 0, "nothing was cut"
            assert destination.read_bytes() == data
            assert answer["size"] == len(data)
            assert answer["checksum"] == written["checksum"]  # verified against the stored one
            asked = _ranges_asked(proxy)
            first_range = f"bytes=0-{PART - 1}".encode()
            assert asked[0][0] == first_range
            # The resumed request starts past what arrived, on the same ETag.
            resumed = [r for r in asked[1:] if r[0].endswith(f"-{PART - 1}".encode())]
            assert len(resumed) == 1 and resumed[0][0] != first_range
            resumed_from = int(resumed[0][0].removeprefix(b"bytes=").split(b"-")[0])
            assert 0 < resumed_from < PART
            assert {etag for _, etag in asked} == {asked[0][1]}

            # Retries are bounded: a body that breaks every time fails the call, clearly.
            proxy.cuts_left = None
            proxy.cut_responses_after_bytes = MIB
            again = roots / "again.bin"
            with pytest.raises(RemoteError) as error:
                await rpc.call(
                    "s3.ReadFile", {"pathname": "cut.bin", "destination_path": str(again)}
                )
            assert error.value.code in ("S3_OPERATION_FAILED", "OPERATION_TIMEOUT")
            assert not again.exists()
            proxy.cut_responses_after_bytes = None
            assert (await rpc.call("s3.Exists", {"pathname": "cut.bin"}))["exists"] is True
        nursery.cancel_scope.cancel()
