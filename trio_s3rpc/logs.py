"""Log output: ``key=value`` text lines, or one JSON object per line.

The server's log calls are written as ``log.info("event=x bucket=%s n=%d",
...)``. The text format prints them as they are; the JSON format turns the
same call into ``{"event": "x", "bucket": "...", "n": 3, ...}`` by pairing
each ``key=%s`` of the format string with its argument, so both formats
carry the same event names and fields, and a value keeps its type (an
``%d`` stays a number; an ``%r`` string is the string, not its repr). Words
that are not ``key=value`` become ``message``; a line that starts with a bare
word (``internal_error id=...``) has that word as its event. Records from
libraries are ``{"event": "log", "message": ...}``. Nothing here adds data
to what the text line carries, so what keeps secrets out of one keeps them
out of the other.

Values come from callers (bucket names, pathnames, methods), so neither format
lets one break a line or drive a terminal: control characters (C0, DEL, C1
such as U+0085 NEL, ANSI escapes), U+2028 and U+2029, which many log readers
take for line breaks, are written as ``\\xNN``/``\\uNNNN`` escapes in text,
and as ``\\uNNNN`` in JSON (which escapes only C0 itself).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, Final, TextIO

TEXT_FORMAT: Final = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
FORMATS: Final = ("text", "json")

# A %-conversion: flags, width, precision, type.
_SPEC = re.compile(r"%[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
_KEY_VALUE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)=(.*)", re.DOTALL)
_BARE_EVENT = re.compile(r"[a-z][a-z0-9_]*")
_TRAILING = ";,"
# What must never reach a log line raw: C0 and C1 controls, DEL, and the Unicode
# line and paragraph separators.
UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_text(text: str) -> str:
    """``text`` with every :data:`UNSAFE_CHARACTERS` written as an escape."""
    return UNSAFE_CHARACTERS.sub(_escape_one, text)


def _escape_json(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class TextFormatter(logging.Formatter):
    """``key=value`` lines whose message cannot hold a line break or a terminal control.

    The record's message (with its arguments merged in: every value) is
    escaped; a traceback that follows keeps its own line breaks.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_text(record.message)
        return super().formatMessage(record)


class JSONFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, ``fields`` (a worker's slot and
    pid, say), then the event and its fields."""

    def __init__(self, fields: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            **self.fields,
        }
        document.update(record_fields(record))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        # json escapes C0 controls itself; DEL, C1 and the separators stay raw.
        return UNSAFE_CHARACTERS.sub(
            _escape_json, json.dumps(document, default=str, ensure_ascii=False)
        )


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The event and fields of a record's ``key=value`` message."""
    message = record.msg
    args = record.args if isinstance(record.args, tuple) else None
    fields = None
    if isinstance(message, str) and (args is not None or not record.args):
        try:
            fields = _parse(message, args or ())
        except (TypeError, ValueError, IndexError):
            fields = None
    return fields if fields is not None else {"event": "log", "message": _message(record)}


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # arguments that do not fit: show both, unmerged
        return f"{record.msg} {record.args!r}"


def _parse(message: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
    position = 0
    fields: dict[str, Any] = {}
    words: list[str] = []
    for index, token in enumerate(message.split()):
        specs = [m for m in _SPEC.finditer(token) if m.group(1) != "%"]
        taken = args[position : position + len(specs)]
        if len(taken) != len(specs):
            return None
        position += len(specs)
        pair = _KEY_VALUE.fullmatch(token)
        if pair is None:
            word = token % taken if specs else token.replace("%%", "%")
            if index == 0 and not specs and _BARE_EVENT.fullmatch(token):
                fields["event"] = token
            else:
                words.append(word)
            continue
        key, value = pair.groups()
        stripped = value.rstrip(_TRAILING)
        single = _SPEC.fullmatch(stripped)
        if single is not None and len(specs) == 1:
            fields[key] = _typed(single.group(1), stripped, taken[0])
        elif specs:
            fields[key] = value.rstrip(_TRAILING) % taken
        else:
            fields[key] = stripped.replace("%%", "%")
    if position != len(args):
        return None
    if words:
        fields["message"] = " ".join(words)
    fields.setdefault("event", "log")
    return fields


def _typed(conversion: str, spec: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if conversion in "diu" and isinstance(value, int):
        return value
    if conversion in "eEfFgG" and isinstance(value, int | float):
        return float(spec % value)
    if conversion in "sr" and isinstance(value, int | float | str):
        return value
    return spec % value if conversion != "r" else str(value)


def setup_logging(
    level: str,
    log_format: str = "text",
    stream: TextIO | None = None,
    *,
    fields: Mapping[str, object] | None = None,
) -> None:
    """Configure the root logger once more (a config file may change the format).

    ``fields`` go on every line (``worker=0 pid=123`` after the logger in text).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter(fields))
    else:
        extra = "".join(f"{key}={value} " for key, value in (fields or {}).items())
        handler.setFormatter(
            TextFormatter(TEXT_FORMAT.replace("%(message)s", extra + "%(message)s"))
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # httpx logs every request at INFO; that is noise at a storage gateway's rate.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
