"""Transfers that survive a crash: SIGKILL the server mid-upload, start another, finish.

The server runs as a real process here (``python -m trio_s3rpc serve``), so
the kill is a real one: no cleanup code runs. The second server reaches
SeaweedFS through a recording proxy, so the test counts the parts it sends and
shows the parts stored before the crash were reused, not re-sent.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from tests.support.proxy import TCPProxy
from tests.support.resume import data_parts, write_file_retrying
from tests.support.server import config_dict, endpoint_server
from tests.support.services import admin_client, free_port
from trio_s3rpc.client import RemoteError, RPCClient
from trio_s3rpc.storage.resumable import MARKER_PART

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB


class ServerProcess:
    """``trio-s3rpc serve`` in a child process, on a free port."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        config = dict(config, rpc={"listen": self.address})
        self.config_path = workdir / f"rr-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log = open(workdir / f"server-{self.port}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trio_s3rpc", "serve", "--config", str(self.config_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the server did not start: " + self.log_text())

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


MARKER = f"partNumber={MARKER_PART}".encode()


def parts_sent(proxy: TCPProxy) -> int:
    """UploadPart requests of data (not of a resumable WriteFile's marker, part 10,000)."""
    return sum(
        1
        for head in proxy.requests
        if head.startswith(b"PUT ") and b"partNumber=" in head and MARKER not in head
    )


def bucket_config(server: dict[str, Any], prefix: str, roots: Path) -> dict[str, Any]:
    return config_dict(
        server,
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": prefix,
                "visibility_mode": "none",
                "part_size": PART,
                "concurrency": 1,
            }
        },
        s3={"local_roots": [str(roots)]},
    )


async def test_chunked_upload_survives_sigkill(
    seaweedfs: Any, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    prefix = f"crash-{secrets.token_hex(4)}/"
    data = secrets.token_bytes(3 * PART + 4321)
    first = ServerProcess(bucket_config(endpoint_server(seaweedfs), prefix, tmp_path), tmp_path)
    servers.append(first)
    async with await RPCClient.connect(first.address) as rpc:
        upload_id = (await rpc.call("s3.UploadStart", {"pathname": "crash.bin"}))["upload_id"]
        sent = 0
        for size in (MIB, 4 * MIB, 3 * MIB, 3 * MIB):  # 11 MiB: two whole parts and a remainder
            await rpc.call(
                "s3.UploadChunk",
                {"upload_id": upload_id, "content": b64(data[sent : sent + size]), "offset": sent},
            )
            sent += size
        with trio.fail_after(20):
            while (await rpc.call("s3.UploadStatus", {"upload_id": upload_id}))[
                "committed_bytes"
            ] < 2 * PART:
                await trio.sleep(0.05)
    first.kill()

    host, port = seaweedfs.endpoint.removeprefix("http://").split(":")
    proxy = TCPProxy(host, int(port))
    async with trio.open_nursery() as nursery:
        proxied = endpoint_server(seaweedfs)
        proxied["endpoint"] = f"http://127.0.0.1:{await proxy.start(nursery)}"
        second = ServerProcess(bucket_config(proxied, prefix, tmp_path), tmp_path)
        servers.append(second)
        async with await RPCClient.connect(second.address) as rpc:
            status = await rpc.call("s3.UploadStatus", {"upload_id": upload_id})
            assert status == {"committed_bytes": 2 * PART, "parts": 2}
            committed = status["committed_bytes"]
            # The client resends from committed_bytes; a chunk that overlaps what
            # is stored is recognised by its offset.
            with pytest.raises(RemoteError) as gap:
                await rpc.call(
                    "s3.UploadChunk",
                    {"upload_id": upload_id, "content": b64(b"x"), "offset": committed + 10},
                )
            assert gap.value.code == "INVALID_REQUEST"
            assert str(committed) in gap.value.text
            resend_from = committed - 1000
            await rpc.call(
                "s3.UploadChunk",
                {"upload_id": upload_id, "content": b64(data[resend_from:]), "offset": resend_from},
            )
            finished = await rpc.call(
                "s3.UploadFinish", {"upload_id": upload_id, "size": len(data)}
            )
            assert finished["size"] == len(data)
            read = await rpc.call("s3.Read", {"pathname": "crash.bin"})
            assert base64.b64decode(read["content"]) == data
        # Only what was not stored before the crash went over the wire: parts 3 and 4
        # (3 x 5 MiB + 4321 bytes is four parts; the first two were reused).
        assert parts_sent(proxy) == 2
        nursery.cancel_scope.cancel()
    listed = admin_client(seaweedfs).list_multipart_uploads(Bucket="test-bucket", Prefix=prefix)
    assert listed.get("Uploads", []) == []


async def test_write_file_resume_after_sigkill_reuses_stored_parts(
    seaweedfs: Any, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    prefix = f"resume-{secrets.token_hex(4)}/"
    source = tmp_path / "backup.tar"
    data = secrets.token_bytes(6 * PART + 777)
    source.write_bytes(data)
    key = prefix + "backup.tar"
    admin = admin_client(seaweedfs)

    host, port = seaweedfs.endpoint.removeprefix("http://").split(":")
    proxy = TCPProxy(host, int(port))
    async with trio.open_nursery() as nursery:
        proxied = endpoint_server(seaweedfs)
        proxied["endpoint"] = f"http://127.0.0.1:{await proxy.start(nursery)}"
        first = ServerProcess(bucket_config(proxied, prefix, tmp_path), tmp_path)
        servers.append(first)

        def stored_parts() -> int:
            uploads = admin.list_multipart_uploads(Bucket="test-bucket", Prefix=key)
            if not uploads.get("Uploads"):
                return 0
            upload_id = uploads["Uploads"][0]["UploadId"]
            listed = admin.list_parts(Bucket="test-bucket", Key=key, UploadId=upload_id)
            return data_parts(listed)

        async def crash_midway() -> None:
            while await trio.to_thread.run_sync(stored_parts) < 2:
                await trio.sleep(0.01)
            # The service "goes away" (the server retries for seconds) and the
            # server is killed meanwhile: no cleanup code gets to run.
            proxy.refuse = True
            proxy.cut_all()
            first.kill()

        async with await RPCClient.connect(first.address) as rpc:
            nursery.start_soon(crash_midway)
            with pytest.raises((trio.BrokenResourceError, OSError)):
                await rpc.call(
                    "s3.WriteFile",
                    {"pathname": "backup.tar", "source_path": str(source), "resume": True},
                )
        proxy.refuse = False
        stored = await trio.to_thread.run_sync(stored_parts)
        assert 2 <= stored < 7

        sent_before = parts_sent(proxy)
        second = ServerProcess(bucket_config(proxied, prefix, tmp_path), tmp_path)
        servers.append(second)
        async with await RPCClient.connect(second.address) as rpc:
            written = await write_file_retrying(
                rpc, {"pathname": "backup.tar", "source_path": str(source), "resume": True}
            )
        assert written["size"] == len(data)
        assert parts_sent(proxy) - sent_before == 7 - stored
        nursery.cancel_scope.cancel()
    body = admin.get_object(Bucket="test-bucket", Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert admin.list_multipart_uploads(Bucket="test-bucket", Prefix=key).get("Uploads", []) == []
    assert "upload_resumed" in second.log_text()
