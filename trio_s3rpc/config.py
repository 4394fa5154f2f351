"""Loading the RoadRunner ``.rr.yaml``: expand ``${VARS}``, validate, fill defaults.

The server reads its ``s3`` section (and, for standalone use and
compatibility, ``rpc``) from the same file RoadRunner reads, so the shapes and
the environment expansion follow RoadRunner. Beside RoadRunner, ``rpc.listen``
is RoadRunner's own address and this server's settings all live under ``s3``
(``s3.listen``, ``s3.relay``, ...), where RoadRunner's sections cannot clash
with them; the old ``rpc.*`` places are still read, with a warning. Other
top-level sections are RoadRunner's and are ignored, except that
``server.env.RR_RPC`` is checked against ``s3.listen``.

Everything is checked here, once, before anything starts: the result is one
frozen :class:`Config` that the rest of the code trusts, and any problem is a
:class:`ConfigError` whose message names the offending field
(``s3.buckets.uploads.visibility: ...``). Unknown keys and other doubtful but
usable settings become warnings on the config instead. Secrets (credential
secrets and tokens) never appear in a message, a warning, a repr or
:func:`describe`.
"""

from __future__ import annotations

import difflib
import grp
import ipaddress
import math
import os
import pwd
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any
from urllib.parse import SplitResult, urlsplit

import yaml

from trio_s3rpc.errors import ErrorCode, RPCError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB

DEFAULT_LISTEN = "tcp://127.0.0.1:6001"

# S3's limits on multipart uploads: every part but the last is at least 5 MiB,
# none is above 5 GiB, and a single CopyObject copies at most 5 GiB.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * GIB
MAX_COPY_SIZE = 5 * GIB
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


@dataclass(slots=True, frozen=True)
class Credentials:
    key: str
    secret: str = field(repr=False)
    token: str = field(default="", repr=False)


@dataclass(slots=True, frozen=True)
class ServerConfig:
    name: str
    region: str
    endpoint: str = ""  # "" = AWS
    credentials: Credentials = field(kw_only=True)
    force_path_style: bool | None = None  # None: path style iff endpoint set
    checksums: str = "when_required"
    # The endpoint presigned and public URLs name, when browsers reach the service elsewhere.
    public_endpoint: str = ""

    @property
    def path_style(self) -> bool:
        if self.force_path_style is not None:
            return self.force_path_style
        return bool(self.endpoint)


@dataclass(slots=True, frozen=True)
class BucketConfig:
    name: str
    server: str
    bucket: str
    prefix: str = ""
    visibility: str = "private"
    max_concurrent_operations: int = 100
    part_size: int = 5 * MIB
    concurrency: int = 5
    public_url: str = ""  # base URL replacing the endpoint in permanent public URLs (CDN)
    visibility_mode: str = "acl"
    multipart_copy_threshold: int = 5 * GIB
    # Defaults for new objects' storage class and encryption ("" = the service's own).
    storage_class: str = ""
    sse: str = ""
    sse_kms_key_id: str = ""


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


@dataclass(slots=True, frozen=True)
class Config:
    rpc: RPCSettings
    s3: S3Settings
    warnings: tuple[str, ...] = ()


# -- loading -------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a RoadRunner config file; ``env`` defaults to os.environ."""
    source = os.fspath(path)
    return parse_config(load_document(source), env, source=source)


def load_document(path: str | os.PathLike[str]) -> Any:
    """A config file's YAML document, not yet expanded nor validated.

    The supervisor hands this to its workers, which parse it as
    :func:`load_config` would (with the same environment).
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {source}: it is not UTF-8 text") from None
    return _parse_yaml(text, source)


def parse_config(
    data: Any, env: Mapping[str, str] | None = None, *, source: str = "<config>"
) -> Config:
    """Validate an already-parsed YAML document (a mapping of sections)."""
    try:
        return _parse_document(data, os.environ if env is None else env)
    except ConfigError as exc:
        if source == "<config>":
            raise
        raise ConfigError(exc.message, _join(exc.details, f"in {source}")) from None


def parse_bucket(
    name: str, raw: Mapping[str, Any], servers: Mapping[str, ServerConfig]
) -> BucketConfig:
    """One bucket's settings, as in ``s3.buckets.<name>``; used by s3.RegisterBucket too.

    Values are taken as given (no ``${VAR}`` expansion); warnings are dropped.
    """
    check_bucket_name(name, "name")
    context = _Context({})
    return _parse_bucket(name, _Section(raw, f"s3.buckets.{name}", context), servers)


# A registered bucket's name (a key of s3.buckets, RegisterBucket's name): it
# goes into logs, metric labels, error messages and config paths, so one rule.
MAX_BUCKET_NAME = 64
_BUCKET_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_bucket_name(name: object, where: str) -> None:
    """Refuse a registered bucket name other than 1-64 letters, digits, '-', '_', '.'."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= MAX_BUCKET_NAME
        or not _BUCKET_NAME.fullmatch(name)
    ):
        raise ConfigError(
            f"{where}: {_show(name)} is not a bucket name: use 1 to {MAX_BUCKET_NAME} "
            "letters, digits, '-', '_' and '.'"
        )


# S3's rules for general purpose bucket names (AWS S3 User Guide, "Bucket naming
# rules"), which MinIO, SeaweedFS and R2 follow too.
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")


def s3_bucket_problem(bucket: str) -> str:
    """Why ``bucket`` is not a valid S3 bucket name, or "" when it is."""
    if "/" in bucket:
        return "has a '/'; use prefix for a folder inside the bucket"
    if not 3 <= len(bucket) <= 63:
        return f"must be 3 to 63 characters long, not {len(bucket)}"
    if not _S3_BUCKET.fullmatch(bucket):
        return (
            "may hold only lowercase letters, digits, '.' and '-', and must begin and end "
            "with a letter or digit"
        )
    if ".." in bucket:
        return "must not have two adjacent periods"
    if _IPV4_LIKE.fullmatch(bucket):
        return "must not be formatted as an IP address"
    return ""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, as RoadRunner's YAML parser does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        # Only the problem text: the snippet of the offending line may hold a secret.
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {type(exc).__name__}") from None


# -- ${VAR} expansion ----------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand_vars(text: str, env: Mapping[str, str], unset: list[str] | None = None) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}`` as RoadRunner does.

    An unset name expands to "" (and is appended to ``unset``); the default is
    used when the variable is unset or empty, and may itself hold references.
    Any other ``$`` is kept as is: RoadRunner also expands a bare ``$NAME``,
    but that would silently cut a literal password such as ``pa$word``.
    """
    out: list[str] = []
    position = 0
    while (dollar := text.find("$", position)) >= 0:
        out.append(text[position:dollar])
        value, position = _expand_reference(text, dollar, env, unset)
        out.append(value)
    out.append(text[position:])
    return "".join(out)


def _expand_reference(
    text: str, dollar: int, env: Mapping[str, str], unset: list[str] | None
) -> tuple[str, int]:
    """The expansion of the reference at ``dollar`` and the index after it."""
    name = _NAME.match(text, dollar + 2) if text.startswith("{", dollar + 1) else None
    if name is None:
        return "$", dollar + 1
    after = name.end()
    if text.startswith("}", after):
        return _lookup(name.group(), env, unset), after + 1
    if text.startswith(":-", after):
        close = _closing_brace(text, after + 2)
        if close is not None:
            value = env.get(name.group(), "")
            if not value:
                value = expand_vars(text[after + 2 : close], env, unset)
            return value, close + 1
    return "$", dollar + 1


def _lookup(name: str, env: Mapping[str, str], unset: list[str] | None) -> str:
    if name not in env and unset is not None:
        unset.append(name)
    return env.get(name, "")


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the ``}`` closing a default that begins at ``start``; nested ``${`` count."""
    depth = 0
    index = start
    while index < len(text):
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return None


def _expand_tree(value: Any, path: str, context: _Context) -> Any:
    """A copy of a YAML subtree with every string expanded; notes unset variables by path."""
    if isinstance(value, str):
        unset: list[str] = []
        expanded = expand_vars(value, context.env, unset)
        if unset:
            context.unset[path] = unset
            names = ", ".join(f"${{{name}}}" for name in unset)
            context.warnings.append(f"{path}: {names} not set; expanded to an empty string")
        return expanded
    if isinstance(value, Mapping):
        return {key: _expand_tree(item, f"{path}.{key}", context) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_tree(item, f"{path}[{index}]", context) for index, item in enumerate(value)]
    return value


# -- scalar parsers --------------------------------------------------------------

_SIZE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": KIB, "kb": KIB, "kib": KIB,
    "m": MIB, "mb": MIB, "mib": MIB,
    "g": GIB, "gb": GIB, "gib": GIB,
    "t": TIB, "tb": TIB, "tib": TIB,
}  # fmt: skip


def parse_size(value: Any, field: str) -> int:
    """Bytes from an int or a string such as ``5242880``, ``8MiB``, ``8MB`` or ``1.5 GiB``.

    KB, MB, GB and TB are binary (1024-based) here, as RoadRunner treats its own
    ``MB`` settings, so ``5MB`` is exactly S3's 5 MiB minimum part size.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{field}: must be a size in bytes, got a boolean")
    if isinstance(value, int | float):
        if not (math.isfinite(value) and value >= 0 and float(value).is_integer()):
            raise ConfigError(f"{field}: must be a whole number of bytes >= 0, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ConfigError(f"{field}: must be a size such as 8MiB, got {_type_name(value)}")
    match = _SIZE.fullmatch(value.strip())
    unit = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ConfigError(
            f"{field}: invalid size {_show(value)}; use bytes or a number with a unit "
            "(B, KiB, MiB, GiB, TiB; KB/MB/GB/TB mean the same)"
        )
    size = Fraction(match.group(1)) * unit
    if size.denominator != 1:
        raise ConfigError(f"{field}: {_show(value)} is not a whole number of bytes")
    return int(size)


_DURATION_PIECE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(f"(?:{_DURATION_PIECE.pattern})+")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6,
    "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip


def parse_duration(value: Any, field: str) -> float:
    """Seconds from a number of seconds or a Go duration such as ``30s``, ``1m30s``, ``500ms``."""
    if isinstance(value, bool):
        raise ConfigError(f"{field}: must be a duration, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration_text(value.strip(), field)
    else:
        raise ConfigError(f"{field}: must be a duration such as 30s, got {_type_name(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{field}: must be a duration >= 0, got {_show(value)}")
    return seconds


def _duration_text(text: str, field: str) -> float:
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not _DURATION.fullmatch(text):
        raise ConfigError(
            f"{field}: invalid duration {_show(text)}; use seconds (30) or a duration "
            "such as 30s, 1m30s, 500ms"
        )
    return sum(
        float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PIECE.findall(text)
    )


def parse_listen(text: str) -> ListenAddress:
    """``tcp://host:port``, ``tcp://[::1]:port``, ``tcp://:port`` (all interfaces) or ``unix://path``."""
    if not isinstance(text, str):
        raise ConfigError(f"listen address must be a string, got {_type_name(text)}")
    stripped = text.strip()
    scheme, separator, rest = stripped.partition("://")
    if not separator or scheme.lower() not in ("tcp", "unix"):
        raise ConfigError(
            f"invalid listen address {_show(text)}: use tcp://host:port or unix:///path/to.sock"
        )
    if scheme.lower() == "unix":
        return _parse_unix(rest, text)
    return _parse_tcp(rest, text)


def _parse_unix(path: str, text: str) -> ListenAddress:
    if not path or "\0" in path:
        raise ConfigError(f"invalid listen address {_show(text)}: no usable socket path")
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        raise ConfigError(
            f"invalid listen address {_show(text)}: a unix socket path may have at most "
            f"{MAX_UNIX_PATH} bytes"
        )
    return ListenAddress("unix", path=path)


def _parse_tcp(hostport: str, text: str) -> ListenAddress:
    if hostport.startswith("["):
        host, bracket, port_text = hostport[1:].partition("]")
        port_text = port_text[1:] if bracket and port_text.startswith(":") else ""
        valid_host = bool(bracket) and _is_ipv6(host)
    else:
        host, _, port_text = hostport.rpartition(":")
        # An unbracketed IPv6 address would leave colons in the host.
        valid_host = re.fullmatch(r"[A-Za-z0-9._-]*", host) is not None
    if not valid_host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(
            f"invalid listen address {_show(text)}: use tcp://host:port with a port 0-65535 "
            "(IPv6 hosts in brackets: tcp://[::1]:6001)"
        )
    return ListenAddress("tcp", host=host, port=int(port_text))


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


# -- reading sections ------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    env: Mapping[str, str]
    warnings: list[str] = field(default_factory=list)
    # Paths whose value referred to unset variables, to explain an empty required field.
    unset: dict[str, list[str]] = field(default_factory=dict)


class _Section:
    """One mapping of the document: typed getters that name the key on error.

    A key that is absent, null or "" (as an unset ``${VAR}`` leaves it) takes
    its default. Keys never read are reported by :meth:`warn_unknown`.
    """

    def __init__(self, raw: Any, path: str, context: _Context) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: must be a mapping, got {_type_name(raw)}")
        self.raw = raw
        self.path = path
        self.context = context
        self.read: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}"

    def get(self, key: str) -> Any:
        self.read.add(key)
        value = self.raw.get(key)
        return None if value is None or value == "" else value

    def text(self, key: str, default: str = "") -> str:
        # Type errors never echo the value: this may be a secret.
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            hint = "; quote it in YAML" if _is_scalar(value) else ""
            raise ConfigError(f"{self.where(key)}: must be a string, got {_type_name(value)}{hint}")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if not value:
            unset = self.context.unset.get(self.where(key), [])
            why = ", ".join(f"${{{name}}}" for name in unset)
            raise ConfigError(f"{self.where(key)}: required", f"{why} not set" if why else "")
        return value

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise ConfigError(f"{self.where(key)}: must be {_alternatives(choices)}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool | None) -> bool | None:
        value = self.get(key)
        if value is None or isinstance(value, bool):
            return default if value is None else value
        if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
            return _BOOLEANS[value.strip().lower()]
        raise ConfigError(f"{self.where(key)}: must be true or false, got {_show(value)}")

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.get(key)
        if value is None:
            return default
        number = _integer(value, self.where(key))
        return _in_range(number, self.where(key), minimum, maximum, str)

    def size(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        size = parse_size(value, self.where(key))
        return _in_range(size, self.where(key), minimum, maximum, _format_size)

    def duration(self, key: str, default: float, *, positive: bool = False) -> float:
        value = self.get(key)
        if value is None:
            return default
        seconds = parse_duration(value, self.where(key))
        if positive and seconds == 0:
            raise ConfigError(f"{self.where(key)}: must be longer than 0")
        return seconds

    def section(self, key: str) -> _Section:
        return _Section(self.get(key), self.where(key), self.context)

    def named(self, key: str, what: str) -> dict[str, Any]:
        """A mapping of user-chosen names (servers, buckets) to their raw settings."""
        value = self.get(key)
        if value is None or (isinstance(value, Mapping) and not value):
            raise ConfigError(f"{self.where(key)}: at least one {what} is required")
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.where(key)}: must be a mapping of {what} names to settings")
        for name in value:
            if not isinstance(name, str) or not name:
                raise ConfigError(
                    f"{self.where(key)}: {what} names must be non-empty strings, got "
                    f"{_show(name)}; quote it in YAML"
                )
        return dict(value)

    def warn_unknown(self) -> None:
        known = sorted(self.read)
        for key in self.raw:
            if key in self.read:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
            self.context.warnings.append(f"unknown key {self.where(str(key))} ({hint})")


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}  # fmt: skip


def _integer(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ConfigError(f"{where}: must be a whole number, got {_show(value)}")


def _in_range(
    value: int, where: str, minimum: int, maximum: int | None, show: Callable[[int], str]
) -> int:
    if value < minimum:
        raise ConfigError(f"{where}: must be at least {show(minimum)}, got {show(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where}: must be at most {show(maximum)}, got {show(value)}")
    return value


# -- sections --------------------------------------------------------------------


def _parse_document(data: Any, env: Mapping[str, str]) -> Config:
    if data is None:
        raise ConfigError("the config is empty; it needs an s3 section")
    if not isinstance(data, Mapping):
        raise ConfigError(f"the config must be a mapping of sections, got {_type_name(data)}")
    if data.get("s3") is None:
        raise ConfigError("s3: section missing; it needs servers and buckets")
    context = _Context(env)
    # Only our two sections are expanded: the others are RoadRunner's business.
    rpc = _Section(_expand_tree(data.get("rpc"), "rpc", context), "rpc", context)
    s3 = _Section(_expand_tree(data["s3"], "s3", context), "s3", context)
    rpc_settings = _parse_rpc(rpc, s3, _workers_rpc(data, context))
    rpc.warn_unknown()
    s3_settings = _parse_s3(s3)
    return Config(rpc_settings, s3_settings, tuple(context.warnings))


# This server's own settings, once under rpc, now under s3 (rpc is RoadRunner's).
MOVED_KEYS = ("socket_mode", "max_frame_size", "max_in_flight")


def _parse_rpc(rpc: _Section, s3: _Section, workers_rpc: str) -> RPCSettings:
    """The RPC server's settings: ``s3.listen`` and friends, falling back to ``rpc.*``."""
    listen, listen_key, roadrunner = _listen(rpc, s3)
    mode_section = _own_setting(rpc, s3, "socket_mode")
    frame_section = _own_setting(rpc, s3, "max_frame_size")
    settings = RPCSettings(
        listen=listen,
        socket_mode=_file_mode(
            mode_section.get("socket_mode"), mode_section.where("socket_mode"), 0o600
        ),
        max_frame_size=frame_section.size(
            "max_frame_size", 256 * MIB, MIN_FRAME_SIZE, MAX_FRAME_SIZE
        ),
        max_in_flight=_own_setting(rpc, s3, "max_in_flight").integer(
            "max_in_flight", 64, minimum=1
        ),
        socket_owner=_socket_owner(s3, "socket_owner", pwd.getpwnam, "user"),
        socket_group=_socket_owner(s3, "socket_group", grp.getgrnam, "group"),
        allow_from=_allow_from(s3, listen),
        relay=_relay(s3, listen, listen_key, roadrunner),
        **_connection_limits(s3),
        listen_key=listen_key,
        roadrunner_listen=roadrunner,
        workers_rpc=workers_rpc,
    )
    _check_workers_rpc(settings, s3.context)
    return settings


def _connection_limits(s3: _Section) -> dict[str, Any]:
    """``s3.memory_limit`` and the other bounds on what connections may hold and take."""
    memory_limit = s3.size("memory_limit", 0, 0, 2**62)
    if 0 < memory_limit < MIN_MEMORY_LIMIT:
        raise ConfigError(
            f"s3.memory_limit: must be at least {_format_size(MIN_MEMORY_LIMIT)}, "
            f"got {_format_size(memory_limit)}"
        )
    connection_memory = s3.size("connection_memory", 0, 0, 2**62)
    if memory_limit and connection_memory > memory_limit:
        raise ConfigError(
            f"s3.connection_memory: {_format_size(connection_memory)} is more than "
            f"s3.memory_limit ({_format_size(memory_limit)})"
        )
    return {
        "memory_limit": memory_limit,
        "connection_memory": connection_memory,
        "max_connections": s3.integer(
            "max_connections", DEFAULT_MAX_CONNECTIONS, minimum=1, maximum=1_000_000
        ),
        "frame_timeout": s3.duration("frame_timeout", DEFAULT_FRAME_TIMEOUT, positive=True),
        "idle_timeout": s3.duration("idle_timeout", 0.0),
    }


def _address(section: _Section, key: str, default: str = "") -> ListenAddress | None:
    text = section.text(key, default)
    if not text:
        return None
    try:
        return parse_listen(text)
    except ConfigError as exc:
        raise ConfigError(f"{section.where(key)}: {exc.message}") from None


def _listen(rpc: _Section, s3: _Section) -> tuple[ListenAddress, str, ListenAddress | None]:
    """This server's address, the key it came from, and RoadRunner's (when both are set)."""
    own = _address(s3, "listen")
    if own is None:
        # Standalone: rpc.listen is ours, as before s3.listen existed.
        listen = _address(rpc, "listen", DEFAULT_LISTEN)
        assert listen is not None
        return listen, "rpc.listen", None
    roadrunner = _address(rpc, "listen")
    if roadrunner is not None and same_address(own, roadrunner):
        raise ConfigError(
            f"s3.listen: {own} clashes with rpc.listen ({roadrunner}), RoadRunner's own RPC "
            "address; give this server an address of its own, e.g. tcp://127.0.0.1:6002"
        )
    return own, "s3.listen", roadrunner


def _own_setting(rpc: _Section, s3: _Section, key: str) -> _Section:
    """The section to read ``key`` from: s3, or rpc (the old place) with a warning."""
    in_s3, in_rpc = s3.get(key) is not None, rpc.get(key) is not None
    if in_rpc and in_s3:
        s3.context.warnings.append(f"rpc.{key} is ignored: s3.{key} is set and takes precedence")
    elif in_rpc:
        s3.context.warnings.append(
            f"rpc.{key}: read for compatibility; move it to s3.{key}, where RoadRunner's rpc "
            "section cannot clash with it"
        )
        return rpc
    return s3


def _socket_owner(section: _Section, key: str, lookup: Callable[[str], Any], what: str) -> int:
    """A user or group for the unix socket file, by name or number; -1 when unset."""
    value = section.get(key)
    if value is None:
        return -1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if not isinstance(value, str):
        raise ConfigError(f"{section.where(key)}: must be a {what} name or id, got {_show(value)}")
    try:
        entry = lookup(value.strip())
    except KeyError:
        raise ConfigError(f"{section.where(key)}: no {what} named {value.strip()!r}") from None
    number: int = entry[2]  # pw_uid / gr_gid
    return number


def _allow_from(section: _Section, listen: ListenAddress) -> tuple[IPNetwork, ...]:
    where = section.where("allow_from")
    value = section.get("allow_from")
    if value is None:
        return ()
    ranges = [value] if isinstance(value, str) else value
    if not isinstance(ranges, list) or not all(isinstance(item, str) for item in ranges):
        raise ConfigError(f'{where}: must be a list of CIDR ranges such as ["10.0.0.0/8"]')
    networks: list[IPNetwork] = []
    for index, text in enumerate(ranges):
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"{where}[{index}]: {_show(text)} is not a CIDR range such as 10.0.0.0/8, "
                "192.168.1.7 or fd00::/8"
            ) from None
        networks.append(_unmapped(network, text.strip(), f"{where}[{index}]", section.context))
    if listen.scheme == "unix":
        section.context.warnings.append(
            f"{where}: has no effect on a unix socket; its file mode, owner and group "
            "(s3.socket_mode, s3.socket_owner, s3.socket_group) say who may connect"
        )
    return tuple(networks)


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(network: IPNetwork, text: str, where: str, context: _Context) -> IPNetwork:
    """An IPv4-mapped IPv6 range (``::ffff:127.0.0.1/128``) as the IPv4 range it means.

    IPv6 listening sockets are IPv6-only here, so an IPv4 peer always arrives
    as an IPv4 address: the mapped form would never match anyone.
    """
    if not isinstance(network, ipaddress.IPv6Network) or not network.subnet_of(_IPV4_MAPPED):
        if isinstance(network, ipaddress.IPv6Network) and network.overlaps(_IPV4_MAPPED):
            context.warnings.append(
                f"{where}: {text} covers IPv4-mapped addresses (::ffff:0:0/96), which "
                "never match: IPv4 peers arrive as IPv4; add the IPv4 range too"
            )
        return network
    mapped = network.network_address.ipv4_mapped
    assert mapped is not None
    normalised = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    context.warnings.append(
        f"{where}: {text} is an IPv4-mapped IPv6 range, which never matches (IPv4 peers "
        f"arrive as IPv4); read as {normalised}"
    )
    return normalised


def _relay(
    section: _Section,
    listen: ListenAddress,
    listen_key: str,
    roadrunner: ListenAddress | None,
) -> RelaySettings | None:
    timeout = section.duration("relay_timeout", 60.0, positive=True)
    connections = section.integer("relay_connections", 2, minimum=1, maximum=64)
    services = _relay_services(section)
    address = _address(section, "relay")
    if address is None:
        if section.get("relay_services") is not None:
            section.context.warnings.append(
                f"{section.where('relay_services')}: has no effect without s3.relay"
            )
        return None
    if same_address(address, listen):
        hint = "" if listen_key == "s3.listen" else "; set s3.listen to this server's own address"
        raise ConfigError(
            f"s3.relay: {address} is this server's own address ({listen_key}): relayed calls "
            f"would come back here{hint}"
        )
    if roadrunner is not None and not same_address(address, roadrunner):
        section.context.warnings.append(
            f"s3.relay: {address} is not rpc.listen ({roadrunner}): calls to RoadRunner's "
            "services will go to another RoadRunner than this file's"
        )
    return RelaySettings(address, timeout, connections, services)


def _relay_services(section: _Section) -> tuple[str, ...]:
    """``s3.relay_services``: RoadRunner services or ``service.Method`` names, or "*"."""
    where = section.where("relay_services")
    value = section.get("relay_services")
    if value is None:
        return DEFAULT_RELAY_SERVICES
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(item, str) for item in entries):
        raise ConfigError(
            f'{where}: must be a list of RoadRunner services or methods such as ["kv", '
            f'"informer.Workers"], or "{RELAY_EVERYTHING}" for all'
        )
    services: list[str] = []
    for index, entry in enumerate(item.strip() for item in entries):
        if entry == RELAY_EVERYTHING:
            services.append(entry)
            continue
        if entry.split(".")[0] == "s3":
            raise ConfigError(f"{where}[{index}]: 's3' is served here, never relayed")
        if not _RELAY_ENTRY.fullmatch(entry):
            raise ConfigError(
                f"{where}[{index}]: {_show(entry)} is not a service (kv) or a method "
                "(informer.Workers)"
            )
        services.append(entry)
    return tuple(sorted(set(services)))


def _workers_rpc(data: Mapping[str, Any], context: _Context) -> str:
    """``server.env.RR_RPC``, expanded; RoadRunner uppercases env keys, so any case counts."""
    server = data.get("server")
    env = server.get("env") if isinstance(server, Mapping) else None
    # server.env is a mapping, or a list of one-key mappings.
    items = [env] if isinstance(env, Mapping) else env if isinstance(env, list) else []
    found = ""
    for item in items:
        if not isinstance(item, Mapping):
            continue
        for key, value in item.items():
            if str(key).upper() == "RR_RPC" and isinstance(value, str):
                found = expand_vars(value, context.env)
    return found.strip()


def _check_workers_rpc(settings: RPCSettings, context: _Context) -> None:
    """Warn when the PHP workers' RR_RPC and this server's addresses disagree."""
    if not settings.workers_rpc:
        return
    where = "server.env.RR_RPC"
    try:
        workers = parse_listen(settings.workers_rpc)
    except ConfigError as exc:
        context.warnings.append(f"{where}: {exc.message}")
        return
    ours = same_address(workers, settings.listen)
    if ours and settings.relay is None:
        context.warnings.append(
            f"{where} points PHP workers at this server ({settings.listen}) but s3.relay is "
            "not set: their calls to RoadRunner's own services (informer, jobs, kv, ...) "
            "will answer METHOD_NOT_FOUND"
        )
    elif not ours and settings.relay is not None:
        context.warnings.append(
            f"{where} is {workers}, not this server ({settings.listen}): PHP workers "
            "will not reach s3.* through the relay"
        )


_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def same_address(first: ListenAddress, second: ListenAddress) -> bool:
    """True when two addresses would collide: one cannot listen where the other does."""
    if first.scheme != second.scheme:
        return False
    if first.scheme == "unix":
        return os.path.abspath(first.path) == os.path.abspath(second.path)
    if first.port != second.port or first.port == 0:
        return False
    hosts = {first.host.lower(), second.host.lower()}
    return len(hosts) == 1 or bool(hosts & set(_WILDCARD_HOSTS)) or hosts <= set(_LOOPBACK_NAMES)


def is_loopback(address: ListenAddress) -> bool:
    """True for unix sockets and tcp addresses reachable only from this machine."""
    if address.scheme == "unix":
        return True
    host = address.host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # all interfaces (""), or a name that may resolve anywhere


def exposure_warning(settings: RPCSettings, address: ListenAddress | None = None) -> str:
    """The risk of a listen address beyond loopback, or "" for loopback and unix sockets."""
    address = address or settings.listen
    if is_loopback(address):
        return ""
    allowed = ", ".join(str(network) for network in settings.allow_from)
    who = f"peers in s3.allow_from ({allowed})" if allowed else "anyone who can reach it"
    return (
        f"{address} is reachable beyond this machine, and Goridge RPC has no "
        f"authentication: {who} can call every s3.* method with this server's storage "
        f"credentials (read, overwrite and delete objects){_relay_exposure(settings)}. "
        "Listen on 127.0.0.1 or a unix socket, or restrict s3.allow_from to the "
        "application's hosts"
    )


def _relay_exposure(settings: RPCSettings) -> str:
    """What an exposed listen address also hands out through the relay ("" without one)."""
    relay = settings.relay
    if relay is None:
        return ""
    roadrunner = settings.roadrunner_listen or relay.address
    wider = "s3.listen is wider than rpc.listen" if is_loopback(roadrunner) else "and"
    what = (
        "every service, including service.Create, which starts any command"
        if RELAY_EVERYTHING in relay.services
        else ", ".join(relay.services)
    )
    return (
        f"; {wider} ({roadrunner}): through s3.relay it hands them RoadRunner's RPC at "
        f"{relay.address} for {what} (s3.relay_services)"
    )


def _file_mode(value: Any, where: str, default: int) -> int:
    """A file mode: an int (YAML reads 0660 as octal) or an octal string like "0660"."""
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{1,4}", value.strip()):
        mode = int(value.strip().removeprefix("0o"), 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        raise ConfigError(f'{where}: must be an octal file mode such as "0660", got {_show(value)}')
    if not 0 <= mode <= 0o777:
        raise ConfigError(
            f"{where}: must be a file mode between 0000 and 0777, got {_show(value)}; "
            'write it as an octal string such as "0660"'
        )
    return mode


def _parse_s3(section: _Section) -> S3Settings:
    servers = {
        name: _parse_server(name, _Section(raw, f"s3.servers.{name}", section.context))
        for name, raw in section.named("servers", "server").items()
    }
    buckets: dict[str, BucketConfig] = {}
    for name, raw in section.named("buckets", "bucket").items():
        check_bucket_name(name, section.where("buckets"))
        bucket_section = _Section(raw, f"s3.buckets.{name}", section.context)
        buckets[name] = _parse_bucket(name, bucket_section, servers)
        bucket_section.warn_unknown()
    settings = S3Settings(
        default=_default_bucket(section, buckets),
        servers=MappingProxyType(servers),
        buckets=MappingProxyType(buckets),
        shutdown_timeout=section.duration("shutdown_timeout", 30.0),
        local_roots=_local_roots(section),
        local_file_mode=_file_mode(
            section.get("local_file_mode"),
            section.where("local_file_mode"),
            DEFAULT_LOCAL_FILE_MODE,
        ),
        local_files=section.choice("local_files", LOCAL_FILES, LOCAL_FILES[0]),
        upload_idle_timeout=section.duration("upload_idle_timeout", 600.0, positive=True),
        abort_stale_after=section.duration("abort_stale_after", 86400.0),
        workers=section.integer(
            "workers", min(available_cores(), MAX_WORKERS), minimum=1, maximum=MAX_WORKERS
        ),
        max_chunked_uploads=section.integer(
            "max_chunked_uploads", DEFAULT_MAX_CHUNKED_UPLOADS, minimum=1
        ),
        max_registered_buckets=section.integer(
            "max_registered_buckets", DEFAULT_MAX_REGISTERED_BUCKETS, minimum=0
        ),
        max_registered_part_size=section.size(
            "max_registered_part_size",
            DEFAULT_MAX_REGISTERED_PART_SIZE,
            MIN_PART_SIZE,
            MAX_PART_SIZE,
        ),
        max_delete_pathnames=section.integer(
            "max_delete_pathnames", DEFAULT_MAX_DELETE_PATHNAMES, minimum=1
        ),
        observability=_parse_observability(section),
        register_scopes=_register_scopes(section, servers),
    )
    section.warn_unknown()
    return settings


def _register_scopes(
    section: _Section, servers: Mapping[str, ServerConfig]
) -> tuple[RegisterScope, ...] | None:
    """``s3.register_buckets``: on (None), off (()), or a list of server/bucket/prefix."""
    where = section.where("register_buckets")
    value = section.get("register_buckets")
    # YAML reads a bare on/off as a boolean.
    if value is None or value is True or value == "on":
        return None
    if value is False or value == "off":
        return ()
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{where}: must be on, off, or a list of {{server, bucket, prefix}} that "
            f"s3.RegisterBucket may name, got {_show(value)}"
        )
    scopes = []
    for index, raw in enumerate(value):
        item = _Section(raw, f"{where}[{index}]", section.context)
        server = item.required_text("server")
        if server not in servers:
            raise ConfigError(
                f"{item.where('server')}: unknown server {server!r} (known: {', '.join(servers)})"
            )
        scopes.append(RegisterScope(server, _bucket_name(item), _prefix(item)))
        item.warn_unknown()
    return tuple(scopes)


def _parse_observability(section: _Section) -> ObservabilitySettings:
    metrics = section.section("metrics")
    status = section.section("status")
    logs = section.section("logs")
    settings = ObservabilitySettings(
        metrics_address=_http_address(metrics, "address"),
        status_address=_http_address(status, "address"),
        probe_interval=status.duration("probe_interval", 10.0, positive=True),
        probe_timeout=status.duration("probe_timeout", 5.0, positive=True),
        log_format=logs.choice("format", LOG_FORMATS, "text"),
    )
    for sub in (metrics, status, logs):
        sub.warn_unknown()
    return settings


def _http_address(section: _Section, key: str) -> ListenAddress | None:
    """``host:port`` (as RoadRunner's metrics.address), or None when unset."""
    text = section.text(key)
    if not text:
        return None
    try:
        return parse_http_address(text)
    except ConfigError as exc:
        raise ConfigError(f"{section.where(key)}: {exc.message}") from None


def parse_http_address(text: str) -> ListenAddress:
    """``host:port`` or ``[v6]:port`` of an HTTP endpoint; ``tcp://`` may precede it."""
    hostport = text.strip().removeprefix("tcp://")
    try:
        if "://" in hostport or ":" not in hostport:
            raise ConfigError("no host:port")
        return _parse_tcp(hostport, text)
    except ConfigError:
        raise ConfigError(
            f"invalid address {_show(text)}: use host:port with a port 0-65535, such as "
            "127.0.0.1:2112 (IPv6 hosts in brackets: [::1]:2112)"
        ) from None


def _default_bucket(section: _Section, buckets: Mapping[str, BucketConfig]) -> str:
    default = section.text("default")
    known = ", ".join(buckets)
    if not default:
        if len(buckets) == 1:
            return next(iter(buckets))
        raise ConfigError(
            f"{section.where('default')}: required when more than one bucket is configured "
            f"(buckets: {known})"
        )
    if default not in buckets:
        raise ConfigError(
            f"{section.where('default')}: unknown bucket {default!r} (known: {known})"
        )
    return default


def _local_roots(section: _Section) -> tuple[str, ...]:
    where = section.where("local_roots")
    value = section.get("local_roots")
    if value is None:
        return (tempfile.gettempdir(),)
    roots = [value] if isinstance(value, str) else value
    if not isinstance(roots, list) or not all(isinstance(root, str) for root in roots):
        raise ConfigError(f"{where}: must be a list of absolute directory paths")
    for index, root in enumerate(roots):
        if not os.path.isabs(root):
            raise ConfigError(f"{where}[{index}]: must be an absolute path, got {root!r}")
        if not os.path.isdir(root):
            section.context.warnings.append(f"{where}[{index}]: {root} is not a directory")
    return tuple(roots)


def _parse_server(name: str, section: _Section) -> ServerConfig:
    credentials = section.section("credentials")
    server = ServerConfig(
        name=name,
        region=section.required_text("region"),
        endpoint=_endpoint(section),
        credentials=Credentials(
            key=credentials.required_text("key"),
            secret=credentials.required_text("secret"),
            token=credentials.text("token"),
        ),
        force_path_style=section.boolean("force_path_style", None),
        checksums=section.choice("checksums", CHECKSUM_MODES, "when_required"),
        public_endpoint=_endpoint(section, "public_endpoint"),
    )
    credentials.warn_unknown()
    section.warn_unknown()
    return server


def _endpoint(section: _Section, key: str = "endpoint") -> str:
    """``http(s)://host[:port]``, without a trailing slash; "" means AWS (or none)."""
    where = section.where(key)
    endpoint = section.text(key).strip()
    if not endpoint:
        return ""
    url = _http_url(endpoint, where)
    if url.path not in ("", "/"):
        raise ConfigError(
            f"{where}: must be http(s)://host[:port] without a path, got {endpoint!r}"
        )
    return f"{url.scheme.lower()}://{url.netloc}"


def _http_url(text: str, where: str) -> SplitResult:
    """The split URL if ``text`` is an http(s) URL with a host and no credentials or query."""
    try:
        url = urlsplit(text)
        _ = url.port  # raises ValueError unless the port is a number 0-65535
    except ValueError:
        raise ConfigError(f"{where}: invalid URL {_show(text)}") from None
    if "@" in url.netloc:
        # Never echo it: the user part may be a password.
        raise ConfigError(f"{where}: must not carry credentials; use the credentials section")
    if url.scheme.lower() not in ("http", "https") or not url.hostname:
        raise ConfigError(
            f"{where}: must be an http:// or https:// URL with a host, got {_show(text)}"
        )
    if url.query or url.fragment:
        raise ConfigError(f"{where}: must not have a query or fragment, got {_show(text)}")
    return url


def _parse_bucket(
    name: str, section: _Section, servers: Mapping[str, ServerConfig]
) -> BucketConfig:
    server = section.required_text("server")
    if server not in servers:
        raise ConfigError(
            f"{section.where('server')}: unknown server {server!r} "
            f"(known: {', '.join(servers) or 'none'})"
        )
    return BucketConfig(
        name=name,
        server=server,
        bucket=_bucket_name(section),
        prefix=_prefix(section),
        visibility=section.choice("visibility", VISIBILITIES, "private"),
        max_concurrent_operations=section.integer("max_concurrent_operations", 100, minimum=1),
        part_size=section.size("part_size", 5 * MIB, MIN_PART_SIZE, MAX_PART_SIZE),
        concurrency=section.integer("concurrency", 5, minimum=1, maximum=MAX_CONCURRENCY),
        public_url=_public_url(section),
        visibility_mode=section.choice("visibility_mode", VISIBILITY_MODES, "acl"),
        multipart_copy_threshold=section.size(
            "multipart_copy_threshold", 5 * GIB, 1, MAX_COPY_SIZE
        ),
        **_archival(section),
    )


def archival_problem(storage_class: str, sse: str, sse_kms_key_id: str) -> tuple[str, str] | None:
    """What is wrong with a storage class and encryption setting: (field, why), or None.

    Used for the bucket defaults here and for the same fields on a write
    request, so both refuse the same values with the same words.
    """
    if storage_class and storage_class not in STORAGE_CLASSES:
        close = difflib.get_close_matches(storage_class.upper(), STORAGE_CLASSES, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return "storage_class", (
            f"must be one of S3's storage classes ({', '.join(STORAGE_CLASSES)}), "
            f"got {storage_class!r}{hint}"
        )
    if sse and sse not in SSE_ALGORITHMS:
        return "sse", f"must be {_alternatives(SSE_ALGORITHMS)}, got {sse!r}"
    if sse_kms_key_id and sse != "aws:kms":
        return "sse_kms_key_id", "is only used with sse: aws:kms"
    if any(char.isspace() for char in sse_kms_key_id):
        return "sse_kms_key_id", f"must be a KMS key id, ARN or alias, got {sse_kms_key_id!r}"
    return None


def _archival(section: _Section) -> dict[str, str]:
    values = {
        "storage_class": section.text("storage_class").strip(),
        "sse": section.text("sse").strip(),
        "sse_kms_key_id": section.text("sse_kms_key_id").strip(),
    }
    problem = archival_problem(**values)
    if problem is not None:
        raise ConfigError(f"{section.where(problem[0])}: {problem[1]}")
    return values


def _bucket_name(section: _Section) -> str:
    bucket = section.required_text("bucket")
    problem = s3_bucket_problem(bucket)
    if problem:
        raise ConfigError(
            f"{section.where('bucket')}: {_show(bucket)} is not an S3 bucket name: it {problem}"
        )
    return bucket


def _prefix(section: _Section) -> str:
    prefix = section.text("prefix")
    where = section.where("prefix")
    if prefix.startswith("/"):
        raise ConfigError(f"{where}: must not start with '/', got {prefix!r}")
    if prefix and not prefix.endswith("/"):
        # Kept as given: RoadRunner joins prefix and pathname directly too.
        section.context.warnings.append(
            f"{where}: {prefix!r} does not end with '/', so keys are {prefix}<pathname> "
            f"(e.g. {prefix}file.txt)"
        )
    return prefix


def _public_url(section: _Section) -> str:
    public_url = section.text("public_url").strip()
    if public_url:
        _http_url(public_url, section.where("public_url"))
    return public_url


# -- describe ----------------------------------------------------------------------


def describe(config: Config) -> str:
    """A human summary of what the config serves; secrets masked, the key shown in part."""
    rpc, s3 = config.rpc, config.s3
    lines = [
        *_describe_rpc(rpc),
        f"shutdown_timeout: {_format_duration(s3.shutdown_timeout)}",
        f"upload_idle_timeout: {_format_duration(s3.upload_idle_timeout)}",
        f"abort_stale_after: {_format_duration(s3.abort_stale_after)}",
        f"workers: {s3.workers}",
        f"local_roots: {', '.join(s3.local_roots) or '(none: local file transfers disabled)'}",
        f"  local_files: {s3.local_files}",
        f"  local_file_mode: {s3.local_file_mode:04o}",
        f"register_buckets: {_describe_scopes(s3.register_scopes)}",
        "servers:",
    ]
    for server in s3.servers.values():
        lines += _describe_server(server)
    lines.append(f"buckets (default: {s3.default}):")
    for bucket in s3.buckets.values():
        lines += _describe_bucket(bucket)
    return "\n".join(lines)


def _describe_scopes(scopes: tuple[RegisterScope, ...] | None) -> str:
    if scopes is None:
        return "on (s3.RegisterBucket may name any prefix of any configured server's bucket)"
    if not scopes:
        return "off (s3.RegisterBucket is refused)"
    return ", ".join(map(str, scopes))


def _describe_rpc(rpc: RPCSettings) -> list[str]:
    lines = [f"listen: {rpc.listen} ({rpc.listen_key})"]
    if rpc.listen.scheme == "unix":
        lines.append(f"  socket_mode: {rpc.socket_mode:04o}")
        lines.append(f"  socket_owner: {_id_name(rpc.socket_owner, pwd.getpwuid)}")
        lines.append(f"  socket_group: {_id_name(rpc.socket_group, grp.getgrgid)}")
    else:
        allowed = ", ".join(str(network) for network in rpc.allow_from)
        lines.append(f"  allow_from: {allowed or '(any peer)'}")
    lines += [
        f"  max_frame_size: {_format_size(rpc.max_frame_size)}",
        f"  max_in_flight: {rpc.max_in_flight}",
        "  memory_limit: "
        + (_format_size(rpc.memory_limit) if rpc.memory_limit else "(a quarter of the memory)"),
        "  connection_memory: "
        + (
            _format_size(rpc.connection_memory)
            if rpc.connection_memory
            else "(a quarter of memory_limit)"
        ),
        f"  max_connections: {rpc.max_connections}",
        f"  frame_timeout: {_format_duration(rpc.frame_timeout)}",
        f"  idle_timeout: {_format_duration(rpc.idle_timeout) if rpc.idle_timeout else 'off'}",
    ]
    relay = rpc.relay
    if relay is None:
        lines.append("relay: (none: calls to services other than s3 answer METHOD_NOT_FOUND)")
    else:
        lines += [
            f"relay: {relay.address} (s3.relay: calls to services other than s3 go there)",
            f"  relay_timeout: {_format_duration(relay.timeout)}",
            f"  relay_connections: {relay.connections}",
            f"  relay_services: {', '.join(relay.services)}",
        ]
    if rpc.roadrunner_listen is not None:
        lines.append(
            f"RoadRunner rpc.listen: {rpc.roadrunner_listen} (RoadRunner's own; no clash with "
            f"s3.listen {rpc.listen})"
        )
    if rpc.workers_rpc:
        ours = rpc.workers_rpc == str(rpc.listen)
        lines.append(
            f"PHP workers' RR_RPC (server.env): {rpc.workers_rpc}"
            + (" (this server)" if ours else "")
        )
    return lines


def _id_name(number: int, lookup: Callable[[int], Any]) -> str:
    if number < 0:
        return "(unchanged: the server's user and group)"
    try:
        return f"{lookup(number)[0]} ({number})"
    except KeyError:
        return str(number)


def _describe_server(server: ServerConfig) -> list[str]:
    credentials = server.credentials
    return [
        f"  {server.name}:",
        f"    endpoint: {server.endpoint or '(AWS)'}",
        f"    region: {server.region}",
        f"    url style: {'path' if server.path_style else 'virtual-hosted'}",
        f"    checksums: {server.checksums}",
        f"    credentials: key {mask_key(credentials.key)}, secret {MASK}, "
        f"token {MASK if credentials.token else '(none)'}",
    ]


def _describe_bucket(bucket: BucketConfig) -> list[str]:
    return [
        f"  {bucket.name}:",
        f"    server: {bucket.server}",
        f"    bucket: {bucket.bucket}",
        f"    prefix: {bucket.prefix!r}",
        f"    visibility: {bucket.visibility} (visibility_mode: {bucket.visibility_mode})",
        f"    max_concurrent_operations: {bucket.max_concurrent_operations}",
        f"    part_size: {_format_size(bucket.part_size)}",
        f"    concurrency: {bucket.concurrency}",
        f"    multipart_copy_threshold: {_format_size(bucket.multipart_copy_threshold)}",
        f"    public_url: {bucket.public_url or '(endpoint)'}",
        f"    storage_class: {bucket.storage_class or '(the service default)'}",
        f"    sse: {bucket.sse or '(none)'}"
        + (f" (sse_kms_key_id: {bucket.sse_kms_key_id})" if bucket.sse_kms_key_id else ""),
    ]


def mask_key(key: str) -> str:
    """An access key with only its first four characters shown (``AKIA****``)."""
    return key[:4] + MASK if len(key) >= 8 else MASK


# -- formatting helpers ----------------------------------------------------------


def _format_size(size: int) -> str:
    for unit, name in ((TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def _format_duration(seconds: float) -> str:
    if seconds >= 60 and seconds.is_integer():
        minutes, rest = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
        return text + (f"{rest}s" if rest else "")
    return f"{seconds:g}s"


def _alternatives(choices: Sequence[str]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}"


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float | bool)


def _show(value: Any) -> str:
    """A value for an error message, cut short. Never call it with a secret."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)
