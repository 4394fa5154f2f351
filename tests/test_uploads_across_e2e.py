"""Chunked uploads whole across instances and workers: the issue's three failures, and more.

Two real server processes on one configuration over one SeaweedFS (or one
service with two workers, connections put on each), and a client that does
what the README's resume loop says: send ``offset`` with every chunk, resend
from the offset a refusal names (or from ``UploadStatus``), and state the
total ``size`` on UploadFinish. The object must end byte-exact, or the
finish be refused with the upload still resumable; never a short object.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.server import config_dict, endpoint_server
from tests.support.services import admin_client, open_uploads
from tests.support.workers import Service, clients_on_each_worker
from trio_s3rpc import checksums
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def resend_from(error: RemoteError) -> int:
    """The offset a refusal names; every refusal must name one."""
    found = re.search(r"resend from offset (\d+)", error.text)
    assert found, f"a refusal that names no offset to resend from: {error.text}"
    return int(found.group(1))


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def one_config(seaweedfs: Any, prefix: str, tmp_path: Path) -> dict[str, Any]:
    return config_dict(
        endpoint_server(seaweedfs),
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": prefix,
                "visibility_mode": "none",
                "part_size": PART,
                "concurrency": 2,
            }
        },
        s3={"local_roots": [str(tmp_path)], "abort_stale_after": 0},
    )


@pytest.fixture(params=["two-instances", "two-workers"])
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def two_ends(
    layout: str, config: dict[str, Any], tmp_path: Path, services: list[Service]
) -> AsyncIterator[list[RPCClient]]:
    """Two connections that reach two different server processes."""
    if layout == "two-instances":
        first, second = Service(config, tmp_path, workers=1), Service(config, tmp_path, workers=1)
        services += [first, second]
        clients = [await RPCClient.connect(first.address), await RPCClient.connect(second.address)]
    else:
        service = Service(config, tmp_path, workers=2)
        services.append(service)
        pids = list(service.worker_pids().values())
        clients = list((await clients_on_each_worker(service.address, pids)).values())
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


def stored(seaweedfs: Any, key: str) -> bytes:
    body: bytes = admin_client(seaweedfs).get_object(Bucket="test-bucket", Key=key)["Body"].read()
    return body


async def test_the_issues_three_failures_end_whole(
    seaweedfs: Any, tmp_path: Path, services: list[Service], layout: str
) -> None:
    prefix = f"across-{secrets.token_hex(4)}/"
    data = secrets.token_bytes(5 * PART + 12345)
    six = 6 * MIB
    async with two_ends(layout, one_config(seaweedfs, prefix, tmp_path), tmp_path, services) as (
        first,
        second,
    ):
        upload_id = (await first.call("s3.UploadStart", {"pathname": "whole.bin"}))["upload_id"]
        # Two 6 MiB chunks to the first instance...
        for offset in (0, six):
            answer = await first.call(
                "s3.UploadChunk",
                {
                    "upload_id": upload_id,
                    "offset": offset,
                    "content": b64(data[offset : offset + six]),
                },
            )
            assert answer["size"] == offset + six
        # ...then a finish on the second one: it must not complete a short object.
        with pytest.raises(RemoteError) as early:
            await second.call("s3.UploadFinish", {"upload_id": upload_id, "size": 2 * six})
        restart = resend_from(early.value)
        assert restart % PART == 0 and restart <= 2 * six
        # The first instance answered its chunks before their parts reached the
        # service (they upload in the background); wait until both whole parts are
        # there, so what follows does not depend on how fast this machine is.
        with trio.fail_after(60):
            while (await first.call("s3.UploadStatus", {"upload_id": upload_id}))[
                "committed_bytes"
            ] < 2 * PART:
                await trio.sleep(0.05)
        # A chunk that does not follow on the second instance names where to resend from...
        with pytest.raises(RemoteError) as gap:
            await second.call(
                "s3.UploadChunk",
                {"upload_id": upload_id, "offset": 2 * six, "content": b64(data[2 * six :])},
            )
        assert gap.value.code == "INVALID_REQUEST"
        offset = resend_from(gap.value)
        # ...and that offset is where the second one continues; it never says 0 when
        # the service holds parts.
        status = await second.call("s3.UploadStatus", {"upload_id": upload_id})
        assert offset == status["committed_bytes"] > 0
        assert status == await first.call("s3.UploadStatus", {"upload_id": upload_id})
        answer = await second.call(
            "s3.UploadChunk",
            {"upload_id": upload_id, "offset": offset, "content": b64(data[offset:])},
        )
        assert answer["size"] == len(data)
        finished = await second.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(data)})
        assert finished["size"] == len(data)
        # Finished elsewhere than it started, it still answers and stores its checksum.
        assert finished["checksum"] == checksums.format_checksum(checksums.crc32c(data))
        meta = await first.call("s3.GetMetadata", {"pathname": "whole.bin"})
        assert meta["checksum"] == finished["checksum"]
        # The first instance's stale session does not finish it again or disturb it.
        with pytest.raises(RemoteError) as again:
            await first.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(data)})
        assert again.value.code == "UPLOAD_NOT_FOUND"
    assert stored(seaweedfs, prefix + "whole.bin") == data
    assert open_uploads(seaweedfs, prefix) == []


@pytest.mark.parametrize("recover", ["refusal", "status"])
async def test_alternating_chunks_resent_as_told_end_byte_exact(
    seaweedfs: Any, tmp_path: Path, services: list[Service], layout: str, recover: str
) -> None:
    prefix = f"alt-{secrets.token_hex(4)}/"
    data = secrets.token_bytes(4 * PART + 777)
    chunk = 3 * MIB
    async with two_ends(
        layout, one_config(seaweedfs, prefix, tmp_path), tmp_path, services
    ) as ends:
        upload_id = (await ends[0].call("s3.UploadStart", {"pathname": "alt.bin"}))["upload_id"]
        offset, turn, refusals = 0, 0, 0
        finished: dict[str, Any] = {}
        with trio.fail_after(120):
            while not finished:
                rpc = ends[turn % 2]
                turn += 1
                while True:  # a refused call is resent on its connection, as told
                    try:
                        if offset < len(data):
                            piece = data[offset : offset + chunk]
                            offset = (
                                await rpc.call(
                                    "s3.UploadChunk",
                                    {
                                        "upload_id": upload_id,
                                        "offset": offset,
                                        "content": b64(piece),
                                    },
                                )
                            )["size"]
                        else:
                            finished = await rpc.call(
                                "s3.UploadFinish", {"upload_id": upload_id, "size": len(data)}
                            )
                        break
                    except RemoteError as exc:
                        refusals += 1
                        assert exc.code == "INVALID_REQUEST", exc.text
                        if recover == "refusal":
                            offset = resend_from(exc)
                        else:
                            status = await rpc.call("s3.UploadStatus", {"upload_id": upload_id})
                            offset = status["committed_bytes"]
        assert refusals > 0  # the instances really did disagree
        assert finished["size"] == len(data)
        assert finished["checksum"] == checksums.format_checksum(checksums.crc32c(data))
    assert stored(seaweedfs, prefix + "alt.bin") == data
    assert open_uploads(seaweedfs, prefix) == []


async def test_finish_without_size_is_refused_and_the_upload_stays_resumable(
    seaweedfs: Any, tmp_path: Path, services: list[Service]
) -> None:
    prefix = f"nosize-{secrets.token_hex(4)}/"
    service = Service(one_config(seaweedfs, prefix, tmp_path), tmp_path, workers=1)
    services.append(service)
    data = secrets.token_bytes(PART + 10)
    async with await RPCClient.connect(service.address) as rpc:
        upload_id = (await rpc.call("s3.UploadStart", {"pathname": "n.bin"}))["upload_id"]
        await rpc.call(
            "s3.UploadChunk", {"upload_id": upload_id, "offset": 0, "content": b64(data)}
        )
        with pytest.raises(RemoteError) as missing:
            await rpc.call("s3.UploadFinish", {"upload_id": upload_id})
        assert missing.value.code == "INVALID_REQUEST" and "'size'" in missing.value.text
        with pytest.raises(RemoteError) as short:
            await rpc.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(data) + 5})
        assert resend_from(short.value) == len(data)
        with pytest.raises(RemoteError) as long:
            await rpc.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(data) - 5})
        assert long.value.code == "INVALID_REQUEST"
        finished = await rpc.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(data)})
        assert finished["size"] == len(data)
    assert stored(seaweedfs, prefix + "n.bin") == data
    assert open_uploads(seaweedfs, prefix) == []
