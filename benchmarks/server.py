"""Our server as a separate process, as users run it: ``python -m trio_s3rpc serve``.

The config is generated from the target (one server, one bucket ``bench``
whose prefix is the run's prefix), written with mode 0600 because it holds
the secret, and the server listens on a free loopback port that it reports
on stderr. Stopping sends SIGTERM (a graceful drain, bounded by a short
``shutdown_timeout``) and kills it if it outlives the grace period.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from benchmarks.procstat import descendants
from benchmarks.target import S3Target
from trio_s3rpc.embedded import terminate_process

RPC_BUCKET = "bench"
START_TIMEOUT = 30.0
STOP_GRACE = 15.0
_SERVING = re.compile(r"serving on (\S+)")


@dataclass(slots=True, frozen=True)
class BucketSettings:
    """The bench bucket's transfer settings; boto3's s3transfer is given the same."""

    part_size: int
    concurrency: int
    max_concurrent_operations: int = 100


def server_config(target: S3Target, bucket: BucketSettings, local_root: Path) -> dict[str, Any]:
    """The ``.rr.yaml`` document for the server under test."""
    return {
        "rpc": {"listen": "tcp://127.0.0.1:0"},
        "s3": {
            "default": RPC_BUCKET,
            "shutdown_timeout": "5s",
            # One process unless a benchmark asks for workers (s3_extra).
            "workers": 1,
            "local_roots": [str(local_root)],
            "servers": {
                "target": {
                    "region": target.region,
                    "endpoint": target.endpoint,
                    "force_path_style": target.path_style,
                    "credentials": {"key": target.access_key, "secret": target.secret_key},
                }
            },
            "buckets": {
                RPC_BUCKET: {
                    "server": "target",
                    "bucket": target.bucket,
                    "prefix": target.prefix,
                    "visibility_mode": target.visibility_mode,
                    "part_size": bucket.part_size,
                    "concurrency": bucket.concurrency,
                    "max_concurrent_operations": bucket.max_concurrent_operations,
                }
            },
        },
    }


class ManagedProcess:
    """A benchmarked server run as a child process: its log, liveness, and a ``with``
    block that starts it and stops it. Subclasses set ``log_path`` and ``_process``."""

    log_path: Path
    _process: subprocess.Popen[bytes] | None

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess(ManagedProcess):
    """``python -m trio_s3rpc serve --config <generated>``, owned by this object."""

    def __init__(
        self,
        target: S3Target,
        bucket: BucketSettings,
        workdir: Path,
        *,
        name: str = "server",
        s3_extra: dict[str, Any] | None = None,
        workers: int = 1,
        tree: Path | None = None,
    ) -> None:
        """``s3_extra`` adds keys to the config's ``s3`` section (``metrics``, say);
        ``name`` tells apart the files of several servers in one workdir; ``workers``
        is ``serve --workers``; ``tree``, another checkout whose server code runs
        (a before/after peer in the same run)."""
        self.workers = workers
        self.tree = tree
        self.config_path = workdir / f"bench-{name}.rr.yaml"
        self.log_path = workdir / f"{name}.log"
        self._document = server_config(target, bucket, workdir)
        self._document["s3"].update(s3_extra or {})
        self._process: subprocess.Popen[bytes] | None = None
        self.address = ""

    @property
    def pid(self) -> int:
        """The process started: the server, or with workers their supervisor."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    @property
    def pids(self) -> list[int]:
        """Every process of the server: with workers, the supervisor and its workers."""
        if self.workers == 1:
            return [self.pid]
        return [self.pid, *descendants(self.pid)]

    @property
    def worker_pids(self) -> list[int]:
        """The processes that serve calls (the server itself without workers)."""
        return self.pids[1:] if self.workers > 1 else [self.pid]

    def start(self) -> str:
        """Start the server and return its RPC address once it listens."""
        descriptor = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            yaml.safe_dump(self._document, handle)
        command = [sys.executable, "-m", "trio_s3rpc", "serve", "--config", str(self.config_path)]
        command += ["--workers", str(self.workers)]
        env = None if self.tree is None else {**os.environ, "PYTHONPATH": str(self.tree)}
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                env=env,
                cwd=self.tree,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: Ctrl-C reaches only the harness, which
                # then stops the server itself.
                process_group=0,
            )
        try:
            self.address = self._wait_for_address()
        except BaseException:
            self.stop()
            raise
        return self.address

    def _wait_for_address(self) -> str:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = _SERVING.search(self.log_path.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited at startup:\n{self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(
            f"the server did not listen within {START_TIMEOUT:g} s:\n{self.log_tail()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, wait for the drain, SIGKILL after the grace period; the exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        terminate_process(process, STOP_GRACE)
        return process.returncode
