"""Ceph's RADOS Gateway as plain processes on 127.0.0.1: one mon, one memstore OSD, radosgw.

RGW keeps real object ACLs (grants are stored, answered and enforced for
anonymous requests), which SeaweedFS does not, so the ACL-dependent tests run
on it as well as on moto. :class:`RadosGateway` builds a cluster from nothing
under a directory of its own (config, monmap, mon store, OSD data dir, logs,
admin sockets), starts the three daemons in the foreground as children of
this process, creates the S3 users, and stops every daemon by its pid
(SIGTERM, then SIGKILL after a grace period). It needs no mgr, no systemd, no
block device and no keyring (``auth none``). The OSD keeps its objects in RAM
(memstore, capped by ``memory_bytes``): the data is gone after ``stop``.

What the settings are for (found bringing it up; Ceph 16.2 from Debian):

- ``auth none`` with every ``ms_*_mode`` set to ``crc``: otherwise radosgw
  still asks for secure mon connections and retries forever.
- ``paxos propose interval`` 0.01: radosgw creates its pools one at a time
  at start, and each waits for a paxos round (1 s by default).
- pool size 1 (``mon allow pool size one``), a CRUSH rule choosing OSDs, not
  hosts: one OSD holds every placement group.
- ``rgw gc obj min wait``: deleted objects' tails (beyond the 4 MiB RGW keeps
  in the head) are freed by the gateway's garbage collector; its default of
  two hours would keep them in the OSD's RAM for the whole session.

Used by the test suite (``tests/conftest.py``) and by ``python -m benchmarks
--backend rgw``. ``.ci/install-rgw`` installs the packages.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from trio_s3rpc.embedded import S3Endpoint, s3_client

from .services import free_port

# Debian's ceph-mon, ceph-osd and radosgw (and what they pull in: ceph-base, ceph-common).
REQUIRED_COMMANDS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
STOP_GRACE_SECONDS = 10.0
STOP_ORDER = ("rgw", "osd", "mon")
CEPH_LOGS = {"mon": "mon.a.log", "osd": "osd.0.log", "rgw": "client.rgw.log"}
MIB = 1 << 20


@dataclass(slots=True, frozen=True)
class RGWUser:
    """An S3 user of the gateway. Its canonical ID (in ACL grants) is its uid."""

    uid: str
    access_key: str
    secret_key: str = field(repr=False)


def missing_commands() -> list[str]:
    """The Ceph commands this machine lacks (``.ci/install-rgw`` installs them)."""
    return [name for name in REQUIRED_COMMANDS if shutil.which(name) is None]


def require_rgw() -> None:
    """Skip (or, under ``CI=true``, fail) the calling test where Ceph is not installed."""
    missing = missing_commands()
    if not missing:
        return
    reason = (
        f"Ceph RGW is absent ({', '.join(missing)} not found); run .ci/install-rgw to install it"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def new_user(uid: str) -> RGWUser:
    """A user with fresh random keys (RGW takes any 20-character key and 40-character secret)."""
    return RGWUser(uid, uuid.uuid4().hex[:20].upper(), uuid.uuid4().hex + uuid.uuid4().hex[:8])


def ceph_conf(
    root: Path, fsid: str, mon_port: int, rgw_port: int, memory_bytes: int, gc_seconds: int
) -> str:
    """The cluster's ``ceph.conf``: every daemon and command reads this one file."""
    settings = {
        "fsid": fsid,
        "mon host": f"v2:127.0.0.1:{mon_port}",
        "public addr": "127.0.0.1",
        "cluster addr": "127.0.0.1",
        "auth cluster required": "none",
        "auth service required": "none",
        "auth client required": "none",
        "auth allow insecure global id reclaim": "true",
        **{
            f"ms {kind} mode": "crc"
            for kind in ("cluster", "service", "client", "mon cluster", "mon service", "mon client")
        },
        "run dir": str(root / "run"),
        "admin socket": str(root / "run" / "$name.asok"),
        "log file": str(root / "log" / "$name.log"),
        "log to stderr": "false",
        "err to stderr": "true",
        "crash dir": str(root / "crash"),
        "keyring": str(root / "keyring"),
        "mon data": str(root / "mon"),
        "mon data avail warn": "2",
        "mon data avail crit": "1",
        "paxos propose interval": "0.01",
        "mon allow pool size one": "true",
        "mon warn on pool no redundancy": "false",
        "mon max pg per osd": "1000",
        "osd pool default size": "1",
        "osd pool default min size": "1",
        "osd pool default pg num": "8",
        "osd pool default pgp num": "8",
        "osd pool default pg autoscale mode": "off",
        "osd crush chooseleaf type": "0",
        "osd data": str(root / "osd"),
        "osd objectstore": "memstore",
        "memstore device bytes": str(memory_bytes),
        "rgw frontends": f"beast endpoint=127.0.0.1:{rgw_port}",
        "rgw data": str(root / "rgw"),
        "rgw gc obj min wait": str(gc_seconds),
        "rgw gc processor period": str(gc_seconds),
    }
    lines = ["[global]", *(f"{name} = {value}" for name, value in settings.items())]
    return "\n".join(lines) + "\n"


class RadosGateway:
    """One single-node Ceph cluster serving S3, owned by this object.

    ``start()`` answers the gateway's endpoint for the first user; ``users``
    holds every user created (``user_names``), ``endpoint_for`` gives each
    its own :class:`S3Endpoint`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        user_names: tuple[str, ...] = ("owner", "other"),
        memory_bytes: int = 1024 * MIB,
        gc_seconds: int = 5,
        startup_timeout: float = 60.0,
    ) -> None:
        self.root = Path(root)
        self.user_names = user_names
        self.memory_bytes = memory_bytes
        self.gc_seconds = gc_seconds
        self.startup_timeout = startup_timeout
        self.users: list[RGWUser] = []
        self.url = ""
        self.started_in = 0.0  # seconds from nothing to the users created
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def pids(self) -> dict[str, int]:
        """The running daemons' pids by name (mon, osd, rgw)."""
        return {name: process.pid for name, process in self._processes.items()}

    def endpoint_for(self, user: RGWUser) -> S3Endpoint:
        return S3Endpoint(self.url, user.access_key, user.secret_key)

    def start(self) -> S3Endpoint:
        """Build and start the cluster; stops whatever started when any step fails."""
        if self.users:
            return self.endpoint_for(self.users[0])
        missing = missing_commands()
        if missing:
            raise RuntimeError(f"Ceph is not installed ({', '.join(missing)} not found)")
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self.endpoint_for(self.users[0])

    def stop(self) -> None:
        """SIGTERM the daemons (gateway, OSD, mon, in that order), each waited for up to the
        grace period and SIGKILLed after it; idempotent.

        The daemons are always reaped, also when interrupted while waiting."""
        running, self._processes = self._processes, {}
        self.users, self.url = [], ""
        # One daemon at a time, clients before servers: radosgw stopping beside its OSD
        # waits for the OSD past the grace period, and an OSD reports itself down to the mon.
        try:
            for name in STOP_ORDER:
                process = running.get(name)
                if process is None or process.poll() is not None:
                    continue
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
        finally:
            for process in running.values():
                if process.poll() is None:
                    process.kill()
                process.wait()

    def __enter__(self) -> S3Endpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the steps ----------------------------------------------------------

    def _start(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        for name in ("mon", "osd", "rgw", "run", "log", "crash"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        mon_port, rgw_port = free_port(), free_port()
        conf = self.root / "ceph.conf"
        conf.write_text(
            ceph_conf(self.root, fsid, mon_port, rgw_port, self.memory_bytes, self.gc_seconds)
        )
        monmap = self.root / "monmap"
        self._run("monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{mon_port}]",
                  "--fsid", fsid, str(monmap), deadline=deadline)  # fmt: skip
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap), deadline=deadline)
        self._spawn("mon", "ceph-mon", "-f", "-i", "a")
        osd_uuid = str(uuid.uuid4())
        # Blocks until the mon answers: the mon's readiness check too.
        osd_id = self._run("ceph", "--connect-timeout", "30", "osd", "new", osd_uuid,
                           deadline=deadline).strip()  # fmt: skip
        self._run("ceph-osd", "--mkfs", "-i", osd_id, "--osd-uuid", osd_uuid, deadline=deadline)
        self._spawn("osd", "ceph-osd", "-f", "-i", osd_id)
        self._spawn("rgw", "radosgw", "-f", "-n", "client.rgw")
        self.url = f"http://127.0.0.1:{rgw_port}"
        self._wait_for_gateway(deadline)
        for uid in self.user_names:
            user = new_user(uid)
            self._run("radosgw-admin", "user", "create", f"--uid={uid}", f"--display-name={uid}",
                      f"--access-key={user.access_key}", f"--secret={user.secret_key}",
                      deadline=deadline)  # fmt: skip
            self.users.append(user)
        # The first request signed by a new user proves it exists for the gateway.
        s3_client(self.endpoint_for(self.users[0])).list_buckets()

    def _command(self, program: str, *args: str) -> list[str]:
        return [program, "-c", str(self.root / "ceph.conf"), *args]

    def _run(self, program: str, *args: str, deadline: float) -> str:
        """Run one command to completion; its stdout, or an error with its output."""
        try:
            done = subprocess.run(
                self._command(program, *args),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(1.0, deadline - time.monotonic()),
                cwd=self.root,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"RGW cluster: {program} did not finish in time") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"RGW cluster: {program} failed ({done.returncode}):\n{output}")
        return done.stdout.decode(errors="replace")

    def _spawn(self, name: str, program: str, *args: str) -> None:
        with (self.root / "log" / f"{name}.out").open("ab") as out:
            self._processes[name] = subprocess.Popen(
                self._command(program, *args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )

    def _wait_for_gateway(self, deadline: float) -> None:
        """Poll until radosgw answers an anonymous ListBuckets (it opens its port last)."""
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"RGW cluster: {name} exited:\n{self._log_tail(name)}")
            try:
                if httpx.get(self.url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last_error = exc
            time.sleep(0.05)
        raise RuntimeError(f"RGW cluster: radosgw did not answer ({last_error!r}):\n"
                           + self._log_tail("rgw"))  # fmt: skip

    def _log_tail(self, name: str) -> str:
        """The end of the daemon's output and of its own log file, for a startup error."""
        texts = []
        for path in (self.root / "log" / f"{name}.out", self.root / "log" / CEPH_LOGS[name]):
            if path.is_file():
                tail = path.read_bytes()[-1500:].decode(errors="replace")
                texts.append(f"--- {path.name}\n{tail}")
        return "\n".join(texts)
