"""The ``s3`` section: servers, buckets, register scopes, observability."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from types import MappingProxyType

from trio_s3rpc.config.addresses import _file_mode, _http_address
from trio_s3rpc.config.buckets import bucket_name, http_url, parse_bucket_section, prefix
from trio_s3rpc.config.model import (
    CHECKSUM_MODES,
    DEFAULT_LOCAL_FILE_MODE,
    DEFAULT_MAX_CHUNKED_UPLOADS,
    DEFAULT_MAX_DELETE_PATHNAMES,
    DEFAULT_MAX_REGISTERED_BUCKETS,
    DEFAULT_MAX_REGISTERED_PART_SIZE,
    LOCAL_FILES,
    LOG_FORMATS,
    MAX_WORKERS,
    BucketConfig,
    ConfigError,
    Credentials,
    ObservabilitySettings,
    RegisterScope,
    S3Settings,
    ServerConfig,
    default,
    default_workers,
)
from trio_s3rpc.config.scalars import (
    _Section,
    _show,
    check_bucket_name,
)
from trio_s3rpc.s3.limits import MAX_PART_SIZE, MIN_PART_SIZE


def _parse_s3(section: _Section) -> S3Settings:
    servers = {
        name: _parse_server(name, _Section(raw, f"s3.servers.{name}", section.context))
        for name, raw in section.named("servers", "server").items()
    }
    buckets: dict[str, BucketConfig] = {}
    for name, raw in section.named("buckets", "bucket").items():
        check_bucket_name(name, section.where("buckets"))
        bucket_section = _Section(raw, f"s3.buckets.{name}", section.context)
        buckets[name] = parse_bucket_section(name, bucket_section, servers)
        bucket_section.warn_unknown()
    settings = S3Settings(
        default=_default_bucket(section, buckets),
        servers=MappingProxyType(servers),
        buckets=MappingProxyType(buckets),
        shutdown_timeout=section.duration(
            "shutdown_timeout", default(S3Settings, "shutdown_timeout")
        ),
        local_roots=_local_roots(section),
        local_file_mode=_file_mode(
            section.get("local_file_mode"),
            section.where("local_file_mode"),
            DEFAULT_LOCAL_FILE_MODE,
        ),
        local_files=section.choice("local_files", LOCAL_FILES, default(S3Settings, "local_files")),
        upload_idle_timeout=section.duration(
            "upload_idle_timeout", default(S3Settings, "upload_idle_timeout"), positive=True
        ),
        abort_stale_after=section.duration(
            "abort_stale_after", default(S3Settings, "abort_stale_after")
        ),
        workers=section.integer("workers", default_workers(), minimum=1, maximum=MAX_WORKERS),
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
        scopes.append(RegisterScope(server, bucket_name(item), prefix(item)))
        item.warn_unknown()
    return tuple(scopes)


def _parse_observability(section: _Section) -> ObservabilitySettings:
    metrics = section.section("metrics")
    status = section.section("status")
    logs = section.section("logs")
    settings = ObservabilitySettings(
        metrics_address=_http_address(metrics, "address"),
        status_address=_http_address(status, "address"),
        probe_interval=status.duration(
            "probe_interval", default(ObservabilitySettings, "probe_interval"), positive=True
        ),
        probe_timeout=status.duration(
            "probe_timeout", default(ObservabilitySettings, "probe_timeout"), positive=True
        ),
        log_format=logs.choice("format", LOG_FORMATS, default(ObservabilitySettings, "log_format")),
    )
    for sub in (metrics, status, logs):
        sub.warn_unknown()
    return settings


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
        checksums=section.choice("checksums", CHECKSUM_MODES, default(ServerConfig, "checksums")),
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
    url = http_url(endpoint, where)
    if url.path not in ("", "/"):
        raise ConfigError(
            f"{where}: must be http(s)://host[:port] without a path, got {endpoint!r}"
        )
    return f"{url.scheme.lower()}://{url.netloc}"
