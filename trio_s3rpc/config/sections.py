"""The ``s3`` section: servers, buckets, register scopes, observability."""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import SplitResult, urlsplit

from trio_s3rpc.config.addresses import _file_mode, _http_address
from trio_s3rpc.config.model import (
    CHECKSUM_MODES,
    DEFAULT_LOCAL_FILE_MODE,
    DEFAULT_MAX_CHUNKED_UPLOADS,
    DEFAULT_MAX_DELETE_PATHNAMES,
    DEFAULT_MAX_REGISTERED_BUCKETS,
    DEFAULT_MAX_REGISTERED_PART_SIZE,
    GIB,
    LOCAL_FILES,
    LOG_FORMATS,
    MAX_CONCURRENCY,
    MAX_WORKERS,
    MIB,
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
    VISIBILITIES,
    VISIBILITY_MODES,
    BucketConfig,
    ConfigError,
    Credentials,
    ObservabilitySettings,
    RegisterScope,
    S3Settings,
    ServerConfig,
    available_cores,
)
from trio_s3rpc.config.scalars import (
    _alternatives,
    _Section,
    _show,
    check_bucket_name,
    s3_bucket_problem,
)
from trio_s3rpc.s3.limits import MAX_COPY_SIZE, MAX_PART_SIZE, MIN_PART_SIZE


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
