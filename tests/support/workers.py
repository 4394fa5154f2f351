"""``trio-s3rpc serve`` as a real process, with workers, and which worker holds a connection.

``Service`` runs the command on a config written to a file (as an operator
does), reads the supervisor's log for its workers' pids, and stops it with
SIGTERM. ``serving_pid`` finds, through ``/proc``, the worker process that
accepted a client's TCP connection, so a test can put two connections on two
different workers instead of hoping the kernel did.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio
import yaml

from tests.support.services import free_port
from trio_s3rpc.client import RPCClient


def _limit_open_files(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


class Service:
    """``python -m trio_s3rpc serve --config`` in a child process, on a free port."""

    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        *,
        workers: int | None = None,
        listen: str = "",
        open_files: int | None = None,
    ) -> None:
        self.port = free_port()
        self.address = listen or f"tcp://127.0.0.1:{self.port}"
        config = dict(config, rpc={"listen": self.address})
        if workers is not None:
            config["s3"] = dict(config["s3"], workers=workers)
        self.config_path = workdir / f"rr-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"service-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trio_s3rpc", "serve", "--config", str(self.config_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # A lowered RLIMIT_NOFILE (soft and hard), as `ulimit -n` gives.
            preexec_fn=None if open_files is None else partial(_limit_open_files, open_files),
        )
        self.wait_for_log("serving on", 30)

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, seconds: float, count: int = 1) -> None:
        deadline = time.monotonic() + seconds
        while self.log_text().count(text) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"no {text!r} in the service's log:\n{self.log_text()}")
            time.sleep(0.05)

    def worker_pids(self) -> dict[int, int]:
        """The pid of each slot's current worker (the last one to report ready)."""
        pids: dict[int, int] = {}
        for slot, pid in re.findall(r"event=worker_ready slot=(\d+) pid=(\d+)", self.log_text()):
            pids[int(slot)] = int(pid)
        return pids

    def stop(self, seconds: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def serving_pid(client: RPCClient, candidates: list[int]) -> int | None:
    """Which of ``candidates`` holds the server end of ``client``'s TCP connection."""
    local = client._stream.socket.getsockname()
    remote = client._stream.socket.getpeername()
    wanted_local = f"{_hex_address(remote[0], remote[1])}"
    wanted_remote = f"{_hex_address(local[0], local[1])}"
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted_local and fields[2] == wanted_remote:
            inode = fields[9]
    if not inode:
        return None
    target = f"socket:[{inode}]"
    for pid in candidates:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def _hex_address(host: str, port: int) -> str:
    packed = socket.inet_aton(host)
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


async def clients_on_each_worker(address: str, pids: list[int]) -> dict[int, RPCClient]:
    """One open connection per worker pid (others opened on the way are closed)."""
    found: dict[int, RPCClient] = {}
    spare: list[RPCClient] = []
    with trio.fail_after(30):
        while len(found) < len(pids):
            client = await RPCClient.connect(address)
            await client.call("s3.ListBuckets", [])  # accepted and served by now
            pid = serving_pid(client, pids)
            if pid is not None and pid not in found:
                found[pid] = client
            else:
                spare.append(client)
    for client in spare:
        await client.aclose()
    return found
