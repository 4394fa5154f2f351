"""The configuration's model: the frozen records every other module trusts, and the
constants and limits they are checked against."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trio_s3rpc.errors import ErrorCode, RPCError

# The S3 layer's records of a server, built by the parser and part of the model.
from trio_s3rpc.s3.endpoint import Credentials as Credentials
from trio_s3rpc.s3.endpoint import ServerConfig as ServerConfig
from trio_s3rpc.s3.limits import MAX_COPY_SIZE, MAX_PART_SIZE, MIN_PART_SIZE

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB

DEFAULT_LISTEN = "tcp://127.0.0.1:6001"

MAX_CONCURRENCY = 64
# A Goridge frame carries its payload length in 32 bits.
MIN_FRAME_SIZE = 64 * KIB
MAX_FRAME_SIZE = 2**32 - 1
# Limits on what callers may hold or open (see the README's configuration table).
DEFAULT_MAX_CONNECTIONS = 4096
DEFAULT_FRAME_TIMEOUT = 60.0
DEFAULT_MAX_CHUNKED_UPLOADS = 1000
DEFAULT_MAX_REGISTERED_BUCKETS = 10_000
DEFAULT_MAX_REGISTERED_PART_SIZE = 64 * MIB
DEFAULT_MAX_DELETE_PATHNAMES = 1_000_000
MIN_MEMORY_LIMIT = 64 * MIB
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_UNIX_PATH = 107

VISIBILITIES = ("public", "private")
VISIBILITY_MODES = ("acl", "none", "auto")
CHECKSUM_MODES = ("when_required", "when_supported")
LOG_FORMATS = ("text", "json")
# s3.local_files: whose rights a WriteFile/ReadFile over a unix socket has.
LOCAL_FILES = ("peer", "server")
# s3.local_file_mode: the widest mode a ReadFile caller may ask for a file.
DEFAULT_LOCAL_FILE_MODE = 0o644
# S3's storage classes (x-amz-storage-class), as the service spells them.
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "SNOW",
    "EXPRESS_ONEZONE",
)
# Server-side encryption (x-amz-server-side-encryption): S3-managed keys, or KMS.
SSE_ALGORITHMS = ("AES256", "aws:kms")
MASK = "****"


class ConfigError(RPCError):
    """The configuration (or a RegisterBucket request) is invalid."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(ErrorCode.INVALID_CONFIG, message, details)


# -- records -------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ListenAddress:
    scheme: str  # "tcp" | "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def default(model: type, name: str) -> Any:
    """The default of field ``name`` of a model dataclass: the parsers read their
    defaults from the model, so each is written once, on its field."""
    for item in dataclasses.fields(model):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
            raise TypeError(f"{model.__name__}.{name} has no default")
    raise TypeError(f"{model.__name__} has no field {name!r}")


@dataclass(slots=True, frozen=True)
class Setting:
    """How one bucket setting is read and shown: the one declaration the config
    parser (``s3.buckets.<name>``), ``s3.RegisterBucket`` and ``check-config``
    read (``config/buckets.py``).

    ``kind`` names the reader: ``text``, ``choice`` (one of ``choices``),
    ``integer`` and ``size`` (within ``minimum``..``maximum``; a whole number on
    the wire), ``server`` (a configured server's name), ``bucket`` (an S3
    bucket name), ``prefix`` and ``url``. ``unset`` is what ``check-config``
    shows for an empty value.
    """

    kind: str
    choices: tuple[str, ...] = ()
    minimum: int = 0
    maximum: int | None = None
    unset: str = ""


def setting(kind: str, **how: Any) -> dict[str, Setting]:
    """A :class:`BucketConfig` field's metadata: how the setting is read and shown."""
    return {"setting": Setting(kind, **how)}


@dataclass(slots=True, frozen=True)
class BucketConfig:
    """One bucket's settings. Each field after ``name`` is a setting, declared
    once here: its default, its reader and its limits (:func:`setting`)."""

    name: str
    server: str = field(metadata=setting("server"))
    bucket: str = field(metadata=setting("bucket"))
    prefix: str = field(default="", metadata=setting("prefix"))
    visibility: str = field(default="private", metadata=setting("choice", choices=VISIBILITIES))
    max_concurrent_operations: int = field(default=100, metadata=setting("integer", minimum=1))
    part_size: int = field(
        default=5 * MIB,
        metadata=setting("size", minimum=MIN_PART_SIZE, maximum=MAX_PART_SIZE),
    )
    concurrency: int = field(
        default=5, metadata=setting("integer", minimum=1, maximum=MAX_CONCURRENCY)
    )
    # The base URL replacing the endpoint in permanent public URLs (a CDN).
    public_url: str = field(default="", metadata=setting("url", unset="(endpoint)"))
    visibility_mode: str = field(
        default="acl", metadata=setting("choice", choices=VISIBILITY_MODES)
    )
    multipart_copy_threshold: int = field(
        default=5 * GIB, metadata=setting("size", minimum=1, maximum=MAX_COPY_SIZE)
    )
    # Defaults for new objects' storage class and encryption ("" = the service's own).
    storage_class: str = field(default="", metadata=setting("text", unset="(the service default)"))
    sse: str = field(default="", metadata=setting("text", unset="(none)"))
    sse_kms_key_id: str = field(default="", metadata=setting("text", unset="(none)"))


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# s3.relay_services by default: what RoadRunner's PHP workers call to store and
# fetch application data, and the read-only informer methods. Left out: the
# service plugin (service.Create starts any command), resetter and
# informer.AddWorker/RemoveWorker (they stop and start worker processes), and
# every service nobody named. See the README's "Beside RoadRunner".
DEFAULT_RELAY_SERVICES = ("informer.List", "informer.Workers", "jobs", "kv", "lock", "metrics")
RELAY_EVERYTHING = "*"
_RELAY_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


@dataclass(slots=True, frozen=True)
class RelaySettings:
    """``s3.relay``: where calls for services other than ``s3`` are forwarded, and which."""

    address: ListenAddress
    timeout: float = 60.0  # per relayed call: its arguments pass through unread
    connections: int = 2  # upstream connections the callers are multiplexed over
    # s3.relay_services: services ("kv") and single methods ("informer.Workers")
    # that may be relayed; ("*",) relays everything.
    services: tuple[str, ...] = DEFAULT_RELAY_SERVICES

    def allows(self, method: str) -> bool:
        """True if a call to ``method`` (``service.Method``) may go to RoadRunner."""
        services = self.services
        if method in services or RELAY_EVERYTHING in services:
            return True
        service, dot, _ = method.partition(".")
        return bool(dot) and service in services


@dataclass(slots=True, frozen=True)
class RPCSettings:
    listen: ListenAddress
    socket_mode: int = 0o600
    max_frame_size: int = 256 * MIB
    max_in_flight: int = 64
    # The bytes held for callers (see budget.py); 0 takes default_memory_limit().
    memory_limit: int = 0
    # One connection's share of memory_limit; 0 takes a quarter of it.
    connection_memory: int = 0
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT  # a frame begun must be whole within it
    idle_timeout: float = 0.0  # 0: an idle connection stays open
    socket_owner: int = -1  # uid given to a unix socket file; -1 leaves it
    socket_group: int = -1  # gid, likewise
    allow_from: tuple[IPNetwork, ...] = ()  # empty: any peer
    relay: RelaySettings | None = None
    listen_key: str = "rpc.listen"  # the key the listen address came from
    # rpc.listen when s3.listen is set: RoadRunner's own RPC address, not ours.
    roadrunner_listen: ListenAddress | None = None
    # server.env.RR_RPC as written (expanded): the address RoadRunner's PHP workers use.
    workers_rpc: str = ""


@dataclass(slots=True, frozen=True)
class RegisterScope:
    """One place ``s3.RegisterBucket`` may point (``s3.register_buckets``): a server's
    S3 bucket, and a prefix every registered bucket's own prefix must start with."""

    server: str
    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"{self.server}:{self.bucket}/{self.prefix}"

    def admits(self, bucket: BucketConfig) -> bool:
        return (
            bucket.server == self.server
            and bucket.bucket == self.bucket
            and bucket.prefix.startswith(self.prefix)
        )


@dataclass(slots=True, frozen=True)
class S3Settings:
    default: str
    servers: Mapping[str, ServerConfig]
    buckets: Mapping[str, BucketConfig]
    shutdown_timeout: float = 30.0
    local_roots: tuple[str, ...] = (tempfile.gettempdir(),)
    local_file_mode: int = DEFAULT_LOCAL_FILE_MODE
    local_files: str = LOCAL_FILES[0]
    upload_idle_timeout: float = 600.0
    abort_stale_after: float = 86400.0
    # Server processes sharing the listen socket; 1 serves from this process alone.
    workers: int = 1
    max_chunked_uploads: int = DEFAULT_MAX_CHUNKED_UPLOADS  # in progress in this process
    max_registered_buckets: int = DEFAULT_MAX_REGISTERED_BUCKETS  # by s3.RegisterBucket
    max_registered_part_size: int = DEFAULT_MAX_REGISTERED_PART_SIZE  # their part_size ceiling
    max_delete_pathnames: int = DEFAULT_MAX_DELETE_PATHNAMES  # per s3.DeleteMany
    observability: ObservabilitySettings = field(default_factory=lambda: ObservabilitySettings())
    # s3.register_buckets: None = on (any server, bucket and prefix), () = off,
    # else the scopes a registered bucket must fall in.
    register_scopes: tuple[RegisterScope, ...] | None = None


@dataclass(slots=True, frozen=True)
class ObservabilitySettings:
    """``s3.metrics``, ``s3.status`` and ``s3.logs``: addresses are off when unset."""

    metrics_address: ListenAddress | None = None
    status_address: ListenAddress | None = None
    # How often each bucket's service is probed, and how long a probe may take.
    probe_interval: float = 10.0
    probe_timeout: float = 5.0
    log_format: str = "text"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


MAX_WORKERS = 256


def default_workers() -> int:
    """``s3.workers`` when unset: a worker per core but one, and at least one.

    The core left over is for what runs beside the server: the store, RoadRunner and
    its PHP workers. Measured on 2 cores shared with the clients and SeaweedFS
    (README, Performance): a second worker made every storage call cost about 40%
    more CPU and run slower, and a ListBuckets call 30% more, for more calls per
    second only where the calls touch no storage.
    """
    return min(max(1, available_cores() - 1), MAX_WORKERS)


@dataclass(slots=True, frozen=True)
class Config:
    rpc: RPCSettings
    s3: S3Settings
    warnings: tuple[str, ...] = ()
