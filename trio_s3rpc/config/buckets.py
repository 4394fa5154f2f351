"""Bucket settings: read from ``s3.buckets.<name>`` and from ``s3.RegisterBucket``
by one reader, and shown by ``check-config``, all driven by
:class:`~trio_s3rpc.config.model.BucketConfig`'s field declarations (default,
kind, limits): a new setting is one field there.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

from trio_s3rpc.config.model import (
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
    BucketConfig,
    ConfigError,
    ServerConfig,
    Setting,
)
from trio_s3rpc.config.scalars import (
    _alternatives,
    _format_size,
    _Section,
    _show,
    s3_bucket_problem,
)

#: Every bucket setting, in declaration order: ``BucketConfig``'s fields after
#: ``name``. Each field's ``default`` (``dataclasses.MISSING`` when required) and
#: ``metadata["setting"]`` (a :class:`Setting`) say how it is read.
BUCKET_SETTINGS: Final[tuple[dataclasses.Field[Any], ...]] = tuple(
    item for item in dataclasses.fields(BucketConfig) if "setting" in item.metadata
)
_ARCHIVAL: Final = ("storage_class", "sse", "sse_kms_key_id")


def how_read(item: dataclasses.Field[Any]) -> Setting:
    """A bucket setting's declaration (its field's metadata)."""
    how: Setting = item.metadata["setting"]
    return how


def wire_type(how: Setting) -> type:
    """The type ``s3.RegisterBucket`` takes a setting as: a whole number or text."""
    return int if how.kind in ("integer", "size") else str


def parse_bucket_section(
    name: str, section: _Section, servers: Mapping[str, ServerConfig]
) -> BucketConfig:
    """One bucket's settings from its section, each checked as its declaration says."""
    values = {
        item.name: _read(section, item.name, how_read(item), item.default, servers)
        for item in BUCKET_SETTINGS
    }
    problem = archival_problem(*(values[key] for key in _ARCHIVAL))
    if problem is not None:
        raise ConfigError(f"{section.where(problem[0])}: {problem[1]}")
    return BucketConfig(name=name, **values)


def describe_bucket(bucket: BucketConfig) -> list[str]:
    """``check-config``'s lines for one bucket: every setting, one line each."""
    lines = [f"  {bucket.name}:"]
    for item in BUCKET_SETTINGS:
        key, how = item.name, how_read(item)
        value = getattr(bucket, key)
        if how.kind == "size":
            shown = _format_size(value)
        elif how.kind == "prefix":
            shown = repr(value)
        else:
            shown = str(value) if value != "" else how.unset or "''"
        lines.append(f"    {key}: {shown}")
    return lines


def _read(
    section: _Section, key: str, how: Setting, default: Any, servers: Mapping[str, ServerConfig]
) -> Any:
    kind = how.kind
    if kind == "server":
        return _server_name(section, servers)
    if kind == "bucket":
        return bucket_name(section)
    if kind == "prefix":
        return prefix(section)
    if kind == "url":
        return _public_url(section, key)
    if kind == "choice":
        return section.choice(key, how.choices, default)
    if kind == "integer":
        return section.integer(key, default, how.minimum, how.maximum)
    if kind == "size":
        assert how.maximum is not None
        return section.size(key, default, how.minimum, how.maximum)
    if kind == "text":
        return section.text(key, default).strip()
    raise TypeError(f"BucketConfig.{key}: unknown setting kind {kind!r}")


def _server_name(section: _Section, servers: Mapping[str, ServerConfig]) -> str:
    server = section.required_text("server")
    if server not in servers:
        raise ConfigError(
            f"{section.where('server')}: unknown server {server!r} "
            f"(known: {', '.join(servers) or 'none'})"
        )
    return server


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


def bucket_name(section: _Section) -> str:
    """The S3 bucket named under ``bucket``, checked against S3's naming rules."""
    bucket = section.required_text("bucket")
    problem = s3_bucket_problem(bucket)
    if problem:
        raise ConfigError(
            f"{section.where('bucket')}: {_show(bucket)} is not an S3 bucket name: it {problem}"
        )
    return bucket


def prefix(section: _Section) -> str:
    """The key prefix under ``prefix``: relative, kept as given (warned without a '/')."""
    value = section.text("prefix")
    where = section.where("prefix")
    if value.startswith("/"):
        raise ConfigError(f"{where}: must not start with '/', got {value!r}")
    if value and not value.endswith("/"):
        # Kept as given: RoadRunner joins prefix and pathname directly too.
        section.context.warnings.append(
            f"{where}: {value!r} does not end with '/', so keys are {value}<pathname> "
            f"(e.g. {value}file.txt)"
        )
    return value


def _public_url(section: _Section, key: str) -> str:
    public_url = section.text(key).strip()
    if public_url:
        http_url(public_url, section.where(key))
    return public_url


def http_url(text: str, where: str) -> SplitResult:
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
