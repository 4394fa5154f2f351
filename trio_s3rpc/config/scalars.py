"""Scalar parsers (sizes, durations, names) and the typed section reader that names
the offending key on error; the formatting helpers their messages use."""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from trio_s3rpc.config.model import GIB, KIB, MAX_UNIX_PATH, MIB, TIB, ConfigError, ListenAddress

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
