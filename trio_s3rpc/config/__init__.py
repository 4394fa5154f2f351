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

from trio_s3rpc.config.addresses import (
    MOVED_KEYS,
    exposure_warning,
    is_loopback,
    parse_http_address,
    same_address,
)
from trio_s3rpc.config.buckets import BUCKET_SETTINGS, archival_problem, how_read, wire_type
from trio_s3rpc.config.describe import describe, mask_key
from trio_s3rpc.config.expansion import expand_vars
from trio_s3rpc.config.load import load_config, load_document, parse_bucket, parse_config
from trio_s3rpc.config.model import (
    CHECKSUM_MODES,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_LISTEN,
    DEFAULT_LOCAL_FILE_MODE,
    DEFAULT_MAX_CHUNKED_UPLOADS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_DELETE_PATHNAMES,
    DEFAULT_MAX_REGISTERED_BUCKETS,
    DEFAULT_MAX_REGISTERED_PART_SIZE,
    DEFAULT_RELAY_SERVICES,
    GIB,
    KIB,
    LOCAL_FILES,
    LOG_FORMATS,
    MASK,
    MAX_CONCURRENCY,
    MAX_FRAME_SIZE,
    MAX_UNIX_PATH,
    MAX_WORKERS,
    MIB,
    MIN_FRAME_SIZE,
    MIN_MEMORY_LIMIT,
    RELAY_EVERYTHING,
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
    TIB,
    VISIBILITIES,
    VISIBILITY_MODES,
    BucketConfig,
    Config,
    ConfigError,
    Credentials,
    IPNetwork,
    ListenAddress,
    ObservabilitySettings,
    RegisterScope,
    RelaySettings,
    RPCSettings,
    S3Settings,
    ServerConfig,
    available_cores,
    default_workers,
)
from trio_s3rpc.config.scalars import (
    MAX_BUCKET_NAME,
    check_bucket_name,
    parse_duration,
    parse_listen,
    parse_size,
    s3_bucket_problem,
)

__all__ = [
    "BUCKET_SETTINGS",
    "CHECKSUM_MODES",
    "DEFAULT_FRAME_TIMEOUT",
    "DEFAULT_LISTEN",
    "DEFAULT_LOCAL_FILE_MODE",
    "DEFAULT_MAX_CHUNKED_UPLOADS",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_DELETE_PATHNAMES",
    "DEFAULT_MAX_REGISTERED_BUCKETS",
    "DEFAULT_MAX_REGISTERED_PART_SIZE",
    "DEFAULT_RELAY_SERVICES",
    "GIB",
    "KIB",
    "LOCAL_FILES",
    "LOG_FORMATS",
    "MASK",
    "MAX_BUCKET_NAME",
    "MAX_CONCURRENCY",
    "MAX_FRAME_SIZE",
    "MAX_UNIX_PATH",
    "MAX_WORKERS",
    "MIB",
    "MIN_FRAME_SIZE",
    "MIN_MEMORY_LIMIT",
    "MOVED_KEYS",
    "RELAY_EVERYTHING",
    "SSE_ALGORITHMS",
    "STORAGE_CLASSES",
    "TIB",
    "VISIBILITIES",
    "VISIBILITY_MODES",
    "BucketConfig",
    "Config",
    "ConfigError",
    "Credentials",
    "IPNetwork",
    "ListenAddress",
    "ObservabilitySettings",
    "RPCSettings",
    "RegisterScope",
    "RelaySettings",
    "S3Settings",
    "ServerConfig",
    "archival_problem",
    "available_cores",
    "check_bucket_name",
    "default_workers",
    "describe",
    "expand_vars",
    "exposure_warning",
    "how_read",
    "is_loopback",
    "load_config",
    "load_document",
    "mask_key",
    "parse_bucket",
    "parse_config",
    "parse_duration",
    "parse_http_address",
    "parse_listen",
    "parse_size",
    "s3_bucket_problem",
    "same_address",
    "wire_type",
]
