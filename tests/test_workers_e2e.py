"""One service over many processes: ``s3.workers`` under a supervisor, as an operator runs it.

Each test starts ``trio-s3rpc serve`` as a real process with two workers and
puts connections on chosen workers (found through /proc), so what crosses
from one worker to another is exercised every run, not when the kernel
happens to spread the connections.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.proxy import TCPProxy
from tests.support.resume import data_parts, write_file_retrying
from tests.support.server import OFFLINE_SERVER, config_dict, endpoint_server
from tests.support.services import admin_client, open_uploads
from tests.support.workers import Service, clients_on_each_worker, serving_pid
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def bucket_config(
    server: dict[str, Any], prefix: str, roots: Path, **bucket: Any
) -> dict[str, Any]:
    return config_dict(
        server,
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": prefix,
                "visibility_mode": "none",
                "part_size": PART,
                "concurrency": 1,
                **bucket,
            }
        },
        s3={"local_roots": [str(roots)], "shutdown_timeout": 20},
    )


def stored_object(seaweedfs: Any, key: str) -> bytes:
    body: bytes = admin_client(seaweedfs).get_object(Bucket="test-bucket", Key=key)["Body"].read()
    return body


async def test_register_bucket_is_seen_by_every_worker_and_a_restarted_one(
    tmp_path: Path, services: list[Service]
) -> None:
    config = config_dict(OFFLINE_SERVER, s3={"abort_stale_after": 0})
    service = Service(config, tmp_path, workers=2)
    services.append(service)
    pids = list(service.worker_pids().values())
    assert len(pids) == 2
    clients = await clients_on_each_worker(service.address, pids)
    first, second = (clients[pid] for pid in pids)
    registered = await first.call(
        "s3.RegisterBucket", {"name": "tmp", "server": "main", "bucket": "other", "prefix": "x/"}
    )
    assert registered["success"] is True
    # Answered only once every worker has it: the other connection sees it at once.
    assert (await second.call("s3.ListBuckets", []))["buckets"] == ["tmp", "uploads"]
    with pytest.raises(RemoteError) as twice:
        await second.call("s3.RegisterBucket", {"name": "tmp", "server": "main", "bucket": "bkt"})
    assert twice.value.code == "BUCKET_ALREADY_EXISTS"
    with pytest.raises(RemoteError) as unknown:
        await second.call("s3.RegisterBucket", {"name": "t2", "server": "nope", "bucket": "bkt"})
    assert unknown.value.code == "INVALID_CONFIG"
    for client in clients.values():
        await client.aclose()

    os.kill(pids[1], signal.SIGKILL)
    await trio.to_thread.run_sync(service.wait_for_log, "event=worker_ready slot=", 30, 3)
    assert "event=worker_restarting" in service.log_text()
    restarted = list(service.worker_pids().values())
    assert pids[0] in restarted and pids[1] not in restarted
    clients = await clients_on_each_worker(service.address, restarted)
    for client in clients.values():
        assert (await client.call("s3.ListBuckets", []))["buckets"] == ["tmp", "uploads"]
        await client.aclose()
    assert service.stop() == 0


async def test_connections_are_spread_over_the_workers(
    tmp_path: Path, services: list[Service]
) -> None:
    """32 connections opened at once, as a pool of PHP workers does: each of the two
    workers serves a fair share (tcp: a SO_REUSEPORT socket per worker). With one
    shared socket, one worker took nearly all of them."""
    service = Service(config_dict(OFFLINE_SERVER, s3={"abort_stale_after": 0}), tmp_path, workers=2)
    services.append(service)
    pids = list(service.worker_pids().values())
    clients: list[RPCClient] = []

    async def connect() -> None:
        clients.append(await RPCClient.connect(service.address))

    async with trio.open_nursery() as nursery:  # all at once: a burst of connections
        for _ in range(32):
            nursery.start_soon(connect)
    for client in clients:
        assert (await client.call("s3.ListBuckets", []))["buckets"] == ["uploads"]
    served = [serving_pid(client, pids) for client in clients]
    counts = {pid: served.count(pid) for pid in pids}
    # Binomial(32, 1/2): at most 5 on one side happens about once in 10,000 runs.
    assert all(count >= 6 for count in counts.values()), counts
    assert sum(counts.values()) == 32
    for client in clients:
        await client.aclose()
    assert service.stop() == 0


async def test_transfer_status_and_cancel_reach_a_write_file_on_the_other_worker(
    seaweedfs: Any, tmp_path: Path, services: list[Service]
) -> None:
    prefix = f"wk-ctl-{secrets.token_hex(4)}/"
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        out.truncate(600 * MIB)  # reads as zeros; long enough to be watched and cancelled
    service = Service(
        bucket_config(endpoint_server(seaweedfs), prefix, tmp_path), tmp_path, workers=2
    )
    services.append(service)
    pids = list(service.worker_pids().values())
    clients = await clients_on_each_worker(service.address, pids)
    writer, watcher = (clients[pid] for pid in pids)
    errors: list[RemoteError] = []
    async with trio.open_nursery() as nursery:

        async def write() -> None:
            try:
                await writer.call(
                    "s3.WriteFile",
                    {"pathname": "big.bin", "source_path": str(source), "transfer_id": "big-1"},
                )
            except RemoteError as exc:
                errors.append(exc)

        nursery.start_soon(write)
        with trio.fail_after(60):
            while True:
                await trio.sleep(0.05)
                try:
                    status = await watcher.call("s3.TransferStatus", {"transfer_id": "big-1"})
                except RemoteError:
                    continue  # not started yet
                assert status["state"] == "running" and status["method"] == "s3.WriteFile"
                assert status["bytes_total"] == 600 * MIB
                if status["bytes_done"] > 0:
                    break
        assert open_uploads(seaweedfs, prefix) == [prefix + "big.bin"]
        cancelled = await watcher.call("s3.Cancel", {"transfer_id": "big-1"})
        assert cancelled == {"success": True, "state": "cancelling"}
    assert [e.code for e in errors] == ["CANCELLED"]
    final = await watcher.call("s3.TransferStatus", {"transfer_id": "big-1"})
    assert final["state"] == "cancelled"
    with pytest.raises(RemoteError) as missing:
        await watcher.call("s3.Cancel", {"transfer_id": "no-such-transfer"})
    assert missing.value.code == "INVALID_REQUEST"
    for client in clients.values():
        await client.aclose()
    assert open_uploads(seaweedfs, prefix) == []
    assert service.stop() == 0


async def test_the_reaper_spares_an_upload_another_worker_has_asked_the_service_to_create(
    seaweedfs: Any, tmp_path: Path, services: list[Service]
) -> None:
    """Worker 0 runs the stale-upload reaper and asks worker 1 what it works on. Worker 1
    has sent a WriteFile's CreateMultipartUpload, which SeaweedFS has made and lists, but
    its answer (the upload id) is held on the way back for several reaper rounds, in which
    the upload grows older than ``abort_stale_after``: worker 1 names its key, so the
    reaper leaves it alone, and the WriteFile finishes whole."""
    prefix = f"wk-reap-{secrets.token_hex(4)}/"
    key = prefix + "held.bin"
    source = tmp_path / "held.bin"
    data = secrets.token_bytes(2 * PART + 99)
    source.write_bytes(data)
    host, port = seaweedfs.endpoint.removeprefix("http://").split(":")
    proxy = TCPProxy(host, int(port))
    async with trio.open_nursery() as nursery:
        proxied = endpoint_server(seaweedfs)
        proxied["endpoint"] = f"http://127.0.0.1:{await proxy.start(nursery)}"
        config = bucket_config(proxied, prefix, tmp_path)
        config["s3"]["abort_stale_after"] = "1s"  # a reaper round every second
        service = Service(config, tmp_path, workers=2)
        services.append(service)
        slots = service.worker_pids()
        clients = await clients_on_each_worker(service.address, list(slots.values()))
        writer = clients[slots[1]]  # not the reaper's worker
        proxy.create_answers_held = release = trio.Event()
        answers: list[Any] = []

        async def write() -> None:
            call = {"pathname": "held.bin", "source_path": str(source)}
            answers.append(await writer.call("s3.WriteFile", call))

        def heads(verb: bytes, marker: bytes) -> list[int]:
            return [
                i
                for i, head in enumerate(proxy.requests)
                if head.startswith(verb) and marker in head.split(b"\r\n", 1)[0]
            ]

        nursery.start_soon(write)
        with trio.fail_after(30):
            while not heads(b"POST ", b"?uploads"):
                await trio.sleep(0.05)
            created_at = heads(b"POST ", b"?uploads")[0]
            held_since = trio.current_time()
            # Rounds that listed the upload once it was older than abort_stale_after.
            while (
                len([i for i in heads(b"GET ", b"uploads") if i > created_at]) < 3
                or trio.current_time() - held_since < 2.5
            ):
                await trio.sleep(0.1)
        assert open_uploads(seaweedfs, prefix) == [key]  # listed, and stale by now
        release.set()
        with trio.fail_after(60):
            while not answers:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert answers[0]["size"] == len(data)
    assert heads(b"DELETE ", b"uploadId=") == []  # nothing was aborted
    assert stored_object(seaweedfs, key) == data
    assert open_uploads(seaweedfs, prefix) == []
    for client in clients.values():
        await client.aclose()
    assert "stale_upload_aborted" not in service.log_text()
    assert service.stop() == 0


async def test_sigkill_of_a_worker_mid_write_file_is_restarted_and_a_retry_finishes(
    seaweedfs: Any, tmp_path: Path, services: list[Service]
) -> None:
    prefix = f"wk-kill-{secrets.token_hex(4)}/"
    key = prefix + "backup.tar"
    source = tmp_path / "backup.tar"
    data = secrets.token_bytes(6 * PART + 777)
    source.write_bytes(data)
    admin = admin_client(seaweedfs)

    def stored_parts() -> int:
        uploads = admin.list_multipart_uploads(Bucket="test-bucket", Prefix=key)
        if not uploads.get("Uploads"):
            return 0
        upload_id = uploads["Uploads"][0]["UploadId"]
        return data_parts(admin.list_parts(Bucket="test-bucket", Key=key, UploadId=upload_id))

    host, port = seaweedfs.endpoint.removeprefix("http://").split(":")
    proxy = TCPProxy(host, int(port))
    async with trio.open_nursery() as nursery:
        proxied = endpoint_server(seaweedfs)
        proxied["endpoint"] = f"http://127.0.0.1:{await proxy.start(nursery)}"
        service = Service(bucket_config(proxied, prefix, tmp_path), tmp_path, workers=2)
        services.append(service)
        pids = list(service.worker_pids().values())
        clients = await clients_on_each_worker(service.address, pids)
        victim = pids[0]
        write = {"pathname": "backup.tar", "source_path": str(source), "resume": True}

        async def crash_midway() -> None:
            while await trio.to_thread.run_sync(stored_parts) < 2:
                await trio.sleep(0.01)
            proxy.refuse = True  # the worker stalls on the service, then dies without cleanup
            proxy.cut_all()
            os.kill(victim, signal.SIGKILL)

        nursery.start_soon(crash_midway)
        with pytest.raises((trio.BrokenResourceError, OSError)):
            await clients[victim].call("s3.WriteFile", write)
        proxy.refuse = False
        await trio.to_thread.run_sync(service.wait_for_log, "event=worker_ready slot=", 30, 3)
        assert f"pid={victim} returncode=-9" in service.log_text()
        assert victim not in service.worker_pids().values()
        stored = await trio.to_thread.run_sync(stored_parts)
        assert 2 <= stored < 7
        # The client retries on a new connection, whichever worker takes it.
        async with await RPCClient.connect(service.address) as retry:
            written = await write_file_retrying(retry, write)
        assert written["size"] == len(data)
        for client in clients.values():
            if client is not clients[victim]:
                await client.aclose()
        nursery.cancel_scope.cancel()
    assert hashlib.sha256(stored_object(seaweedfs, key)).digest() == hashlib.sha256(data).digest()
    assert open_uploads(seaweedfs, prefix) == []
    assert service.stop() == 0


async def test_sigterm_under_load_drains_every_worker_and_exits_0(
    seaweedfs: Any, tmp_path: Path, services: list[Service]
) -> None:
    prefix = f"wk-drain-{secrets.token_hex(4)}/"
    sources = []
    for index in range(2):
        source = tmp_path / f"load-{index}.bin"
        with source.open("wb") as out:
            out.write(secrets.token_bytes(PART))
            out.truncate(20 * PART + index)  # the rest reads as zeros
        sources.append(source)
    service = Service(
        bucket_config(endpoint_server(seaweedfs), prefix, tmp_path), tmp_path, workers=2
    )
    services.append(service)
    pids = list(service.worker_pids().values())
    clients = await clients_on_each_worker(service.address, pids)
    watchers = await clients_on_each_worker(service.address, pids)
    answers: dict[int, Any] = {}
    async with trio.open_nursery() as nursery:
        for index, pid in enumerate(pids):

            async def write(index: int = index, client: RPCClient = clients[pid]) -> None:
                answers[index] = await client.call(
                    "s3.WriteFile",
                    {
                        "pathname": f"load-{index}.bin",
                        "source_path": str(sources[index]),
                        "transfer_id": f"load-{index}",
                    },
                )

            nursery.start_soon(write)
        # Both calls are running, one on each worker, when the signal comes.
        running: set[int] = set()

        async def watch(index: int) -> None:
            while True:
                try:
                    status = await watchers[pids[1 - index]].call(
                        "s3.TransferStatus", {"transfer_id": f"load-{index}"}
                    )
                except RemoteError:
                    status = {"state": "not yet"}
                if status["state"] == "running":
                    running.add(index)
                    return
                assert status["state"] == "not yet"
                await trio.sleep(0.01)

        with trio.fail_after(30):
            async with trio.open_nursery() as polls:
                for index in range(len(pids)):
                    polls.start_soon(watch, index)
        service.process.send_signal(signal.SIGTERM)
    returncode = await trio.to_thread.run_sync(service.process.wait, 60)
    assert returncode == 0
    for index, source in enumerate(sources):
        assert answers[index]["size"] == source.stat().st_size
        stored = stored_object(seaweedfs, f"{prefix}load-{index}.bin")
        assert hashlib.sha256(stored).digest() == hashlib.sha256(source.read_bytes()).digest()
    log = service.log_text()
    assert log.count("event=shutdown_complete") == 2
    assert "event=worker_killed" not in log
    for client in [*clients.values(), *watchers.values()]:
        await client.aclose()
    assert open_uploads(seaweedfs, prefix) == []


async def test_workers_share_a_unix_socket_whose_file_goes_with_the_service(
    tmp_path: Path, services: list[Service]
) -> None:
    path = tmp_path / "rpc.sock"
    config = config_dict(OFFLINE_SERVER, s3={"abort_stale_after": 0})
    service = Service(config, tmp_path, workers=2, listen=f"unix://{path}")
    services.append(service)
    async with trio.open_nursery():
        for _ in range(8):
            async with await RPCClient.connect(f"unix://{path}") as client:
                assert (await client.call("s3.ListBuckets", []))["buckets"] == ["uploads"]
    assert service.log_text().count("event=worker_ready") == 2
    assert service.stop() == 0
    assert not path.exists()


def test_serving_pid_finds_the_worker_of_a_connection() -> None:
    # The helper the tests above rely on: a connection to this very process.
    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:

            async def accept() -> None:
                stream = await listeners[0].accept()
                await stream.receive_some(1)

            nursery.start_soon(accept)
            client = RPCClient(await trio.open_tcp_stream("127.0.0.1", port))
            await trio.sleep(0.1)
            assert serving_pid(client, [os.getpid() + 100000, os.getpid()]) == os.getpid()
            await client.aclose()

    trio.run(main)
