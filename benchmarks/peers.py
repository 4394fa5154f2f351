"""Other Goridge ``s3.*`` servers measured in the same run as ours: ``--rpc-peer``, ``--go-plugin``.

A peer is any server speaking the same RPC methods with a bucket named like
ours (:data:`~benchmarks.server.RPC_BUCKET`). Its cells are ours with another
address: the same client, the same frames, the same workloads, taking turns
with ours in every round. A peer's client names are ``peer:NAME`` (JSON
codec) and ``peer:NAME-msgpack``, so the ratio of ``rpc`` is to the first and
that of ``rpc-msgpack`` to the second. Read and Exists need the fixtures under
the peer's bucket, so they are written through the peer's own ``s3.Write``.

:class:`GoPluginProcess` starts the unmodified Go RoadRunner S3 plugin
(``/work/shared/go-plugin``'s ``s3-rpc-server`` binary, or any build of its
``main.go``) against the run's storage, with the bucket pointing at the run's
prefix, and stops it on exit.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import trio
import yaml

from benchmarks.clients import fixture_key
from benchmarks.server import RPC_BUCKET, ManagedProcess
from benchmarks.target import S3Target
from trio_s3rpc.client import RPCClient
from trio_s3rpc.embedded import terminate_process

PEER_PREFIX = "peer:"
MSGPACK_SUFFIX = "-msgpack"
START_TIMEOUT = 30.0
STOP_GRACE = 10.0
GO_PLUGIN_NAME = "go"


@dataclass(slots=True, frozen=True)
class RPCPeer:
    name: str
    address: str


def parse_peer(text: str) -> RPCPeer:
    """``NAME=tcp://host:port`` (or ``unix:///path``); ValueError naming what is wrong."""
    name, sep, address = text.partition("=")
    name = name.strip()
    if not sep or not name or not address:
        raise ValueError(f"--rpc-peer wants NAME=ADDRESS, got {text!r}")
    if not name.replace("-", "").replace("_", "").isalnum() or name.endswith(MSGPACK_SUFFIX):
        raise ValueError(f"--rpc-peer name {name!r}: letters, digits, - and _ (no -msgpack)")
    if not address.startswith(("tcp://", "unix://")):
        raise ValueError(f"--rpc-peer {name}: address must start with tcp:// or unix://")
    return RPCPeer(name, address)


def peer_clients(peer: RPCPeer, with_msgpack: bool) -> list[str]:
    """The client names of a peer's cells."""
    json_client = f"{PEER_PREFIX}{peer.name}"
    return [json_client, json_client + MSGPACK_SUFFIX] if with_msgpack else [json_client]


def is_peer(client: str) -> bool:
    return client.startswith(PEER_PREFIX)


def peer_name(client: str) -> str:
    return client.removeprefix(PEER_PREFIX).removesuffix(MSGPACK_SUFFIX)


def peer_codec(client: str) -> str:
    return "msgpack" if client.endswith(MSGPACK_SUFFIX) else "json"


def our_counterpart(client: str) -> str:
    """The client of ours that a peer's cell is compared with: same codec."""
    return "rpc-msgpack" if peer_codec(client) == "msgpack" else "rpc"


def write_fixtures(peer: RPCPeer, sizes: list[int], count: int) -> None:
    """The Read/Exists objects, written through the peer (its bucket, its prefix)."""

    async def write_all() -> None:
        async with await RPCClient.connect(peer.address) as rpc:
            for size in sizes:
                content = base64.b64encode(os.urandom(size)).decode("ascii")
                for index in range(count):
                    args = {
                        "bucket": RPC_BUCKET,
                        "pathname": fixture_key(size, index),
                        "content": content,
                    }
                    await rpc.call("s3.Write", args)

    trio.run(write_all)


def probe(peer: RPCPeer, codec: str, size: int) -> str:
    """ "" if the peer answers ListBuckets and Exists in this codec as ours does, else why not.

    The Go plugin, for one, decodes msgpack maps by its Go field names
    (``Bucket``, ``Pathname``), so PHP's msgpack calls, keyed ``bucket`` and
    ``pathname``, reach it without arguments.
    """

    async def check() -> str:
        async with await RPCClient.connect(peer.address, codec=codec) as rpc:
            answer = await rpc.call("s3.ListBuckets", {})
            if not isinstance(answer, dict) or RPC_BUCKET not in answer.get("buckets", ()):
                return f"s3.ListBuckets answered {answer!r:.200}"
            args = {"bucket": RPC_BUCKET, "pathname": fixture_key(size, 0)}
            answer = await rpc.call("s3.Exists", args)
            if not isinstance(answer, dict) or answer.get("exists") is not True:
                return f"s3.Exists answered {answer!r:.200}"
        return ""

    try:
        return trio.run(check)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]


def go_plugin_config(target: S3Target, listen: str) -> dict[str, object]:
    """The Go plugin's ``.rr.yaml``: our bench bucket's name, on the run's bucket and prefix."""
    return {
        "rpc": {"listen": listen},
        "logs": {"level": "warn"},
        "s3": {
            "default": RPC_BUCKET,
            "servers": {
                "target": {
                    "region": target.region,
                    "endpoint": target.endpoint,
                    "credentials": {"key": target.access_key, "secret": target.secret_key},
                }
            },
            "buckets": {
                RPC_BUCKET: {
                    "server": "target",
                    "bucket": target.bucket,
                    "prefix": target.prefix,
                    "visibility": "private",
                }
            },
        },
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class GoPluginProcess(ManagedProcess):
    """The Go plugin's ``s3-rpc-server`` as a peer, owned by this object."""

    def __init__(self, binary: Path, target: S3Target, workdir: Path) -> None:
        self.binary = binary
        self.config_path = workdir / "go-plugin.rr.yaml"
        self.log_path = workdir / "go-plugin.log"
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self._document = go_plugin_config(target, self.address)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the Go plugin is not running")
        return self._process.pid

    @property
    def peer(self) -> RPCPeer:
        return RPCPeer(GO_PLUGIN_NAME, self.address)

    def start(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"--go-plugin {self.binary}: not an executable file")
        descriptor = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            yaml.safe_dump(self._document, handle)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        host, _, port = self.address.removeprefix("tcp://").rpartition(":")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the Go plugin exited at startup:\n{self.log_tail()}")
            try:
                socket.create_connection((host, int(port)), timeout=1.0).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the Go plugin did not listen within {START_TIMEOUT:g} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate_process(process, STOP_GRACE)
