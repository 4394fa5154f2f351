"""Watching and stopping a real 1 GiB WriteFile against SeaweedFS."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import admin_client, open_uploads
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
GIB = 1024 * MIB


@pytest.fixture(scope="module")
def gib_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "one-gib.bin"
    block = secrets.token_bytes(MIB)
    with path.open("wb") as out:
        for _ in range(1024):
            out.write(block)
    return path


@pytest.fixture
def prefix() -> str:
    return f"ctl-{secrets.token_hex(4)}/"


@pytest.fixture
async def address(seaweedfs: Any, gib_file: Path, prefix: str) -> AsyncIterator[str]:
    config = config_dict(
        endpoint_server(seaweedfs),
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": prefix,
                "visibility_mode": "none",
                "part_size": 8 * MIB,
                "concurrency": 4,
            }
        },
        s3={"local_roots": [str(gib_file.parent)]},
    )
    async with running_app(config) as (_, bound):
        yield bound


async def test_progress_rises_during_a_1_gib_write_file_and_cancel_stops_it(
    address: str, gib_file: Path, seaweedfs: Any, prefix: str
) -> None:
    async with (
        await RPCClient.connect(address) as worker,
        await RPCClient.connect(address) as watcher,
    ):
        errors: list[RemoteError] = []
        seen: list[int] = []
        async with trio.open_nursery() as nursery:

            async def write() -> None:
                try:
                    await worker.call(
                        "s3.WriteFile",
                        {
                            "pathname": "gib.bin",
                            "source_path": str(gib_file),
                            "transfer_id": "gib-upload",
                        },
                    )
                except RemoteError as exc:
                    errors.append(exc)

            nursery.start_soon(write)
            with trio.fail_after(60):
                while len(set(seen)) < 4:
                    await trio.sleep(0.05)
                    try:
                        status = await watcher.call(
                            "s3.TransferStatus", {"transfer_id": "gib-upload"}
                        )
                    except RemoteError:
                        continue  # not registered yet
                    assert status["state"] == "running"
                    if status["bytes_total"] == status["bytes_done"] == 0:
                        continue  # registered, its source not opened yet (in a thread)
                    assert status["bytes_total"] == GIB
                    assert status["parts_total"] == 128
                    seen.append(status["bytes_done"])
            assert seen == sorted(seen) and seen[-1] > 0
            assert open_uploads(seaweedfs, prefix) == [prefix + "gib.bin"]
            cancelled = await watcher.call("s3.Cancel", {"transfer_id": "gib-upload"})
            assert cancelled["success"] is True
        assert [e.code for e in errors] == ["CANCELLED"]
        final = await watcher.call("s3.TransferStatus", {"transfer_id": "gib-upload"})
        assert final["state"] == "cancelled"
        assert 0 < final["bytes_done"] < GIB
    assert open_uploads(seaweedfs, prefix) == []
    assert (
        not admin_client(seaweedfs)
        .list_objects_v2(Bucket="test-bucket", Prefix=prefix)
        .get("Contents")
    )


async def test_timeout_stops_a_write_file_and_leaves_no_upload(
    address: str, gib_file: Path, seaweedfs: Any, prefix: str
) -> None:
    async with await RPCClient.connect(address) as rpc:
        with pytest.raises(RemoteError) as error:
            await rpc.call(
                "s3.WriteFile",
                {"pathname": "slow.bin", "source_path": str(gib_file), "timeout": 0.5},
            )
    assert error.value.code == "OPERATION_TIMEOUT"
    assert open_uploads(seaweedfs, prefix) == []
