"""HTTP/1.1 in its plain form, written and read without h11's per-event Python work.

S3 services answer small requests in one form: ``HTTP/1.1 <status>``, well-formed
header lines, a ``Content-Length``, CRLF line ends. For requests and answers
in exactly that form, :mod:`trio_s3rpc.s3.http11` writes the request head with
:func:`request_head` and reads the answer's head with :func:`parse_head`
(sans-IO, as h11: bytes in, a result out), and counts the body's bytes
itself. Both functions only *recognise* the plain form, with one regular
expression each and no per-header Python loop beyond a split; anything else
(a header h11 would refuse or rewrite, a ``Transfer-Encoding``, an answer
with no length, a 1xx, HTTP/1.0, a bare LF, a folded line, a head too large)
makes them say so (``None`` or :data:`NOT_PLAIN`), and the connection hands
the whole exchange to h11, which then raises or reads exactly what it
always did. So the plain form is a subset of what h11 accepts, read as h11
reads it: ``tests/s3/test_plain.py`` holds both functions to h11 on
generated heads, and ``tests/s3/test_http11.py`` holds the connection to
httpcore's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# h11's ABNF (h11/_abnf.py), narrowed: a value's characters are visible ASCII,
# obs-text, and inner spaces or tabs (h11 also takes C0 controls but NUL,
# which then go to h11).
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE_CHARS = rb"[\t\x20-\x7e\x80-\xff]"
_VALUE = rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?"

_TOKENS: Final = re.compile(rb"(?:" + _TOKEN + rb"\n)*")
_VALUES: Final = re.compile(rb"(?:" + _VALUE + rb"\n)*")
_TARGET: Final = re.compile(rb"[\x21-\x7e]+")
_METHOD: Final = re.compile(_TOKEN)

_HEAD: Final = re.compile(
    rb"HTTP/1\.1 ([0-9]{3})(?: " + _VALUE_CHARS + rb"*)?\r\n"
    rb"((?:" + _TOKEN + rb":" + _VALUE_CHARS + rb"*\r\n)*)\r\n"
)
# The headers that decide framing and reuse, found in the header block.
_FRAMING: Final = re.compile(
    rb"^(content-length|transfer-encoding|connection):[ \t]*(.*?)[ \t]*\r$",
    re.IGNORECASE | re.MULTILINE,
)
_DIGITS: Final = re.compile(rb"[0-9]{1,19}")

_STATUS_PREFIX: Final = b"HTTP/1.1 "
# As h11's max_incomplete_event_size in http11.py: a longer head goes to h11 to refuse.
MAX_HEAD_SIZE: Final = 100 * 1024
_NO_BODY_STATUSES: Final = (204, 304)


@dataclass(slots=True, frozen=True)
class Head:
    """An answer's head in the plain form, as h11 would have parsed it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    """(name as sent, value without surrounding spaces), in order: h11's ``raw_items()``."""
    length: int
    """The body's length in bytes (0 for HEAD, 204 and 304, as h11 frames them)."""
    keep_alive: bool
    """False when the server said ``Connection: close``."""
    size: int
    """Bytes of the buffer the head took; the body starts there."""


class _NotPlain:
    def __repr__(self) -> str:
        return "NOT_PLAIN"


NOT_PLAIN: Final = _NotPlain()
"""What :func:`parse_head` answers for a head h11 must read."""


def request_head(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body_length: int
) -> bytes | None:
    """The request line and headers as h11 writes them, or None when h11 must write
    them (or refuse them): a name or value outside the plain form, a Host header
    missing, repeated or not first, a Content-Length that is not the body's, a
    Transfer-Encoding or Connection header, or CONNECT."""
    names = b"\n".join([name for name, _ in headers]) + b"\n"
    values = b"\n".join([value for _, value in headers]) + b"\n"
    # Joined by LF, checked in one match each: an LF inside a name or value would
    # pass for a separator, so the count of separators is checked too.
    if (
        names.count(b"\n") + values.count(b"\n") != 2 * len(headers)
        or _TOKENS.fullmatch(names) is None
        or _VALUES.fullmatch(values) is None
        or _METHOD.fullmatch(method) is None
        or _TARGET.fullmatch(target) is None
    ):
        return None
    # h11 writes Host first; ours is first already, and then the order is kept.
    lowered = b"\n" + names.lower()
    if not lowered.startswith(b"\nhost\n") or lowered.find(b"\nhost\n", 1) >= 0:
        return None
    if b"\ntransfer-encoding\n" in lowered or b"\nconnection\n" in lowered or method == b"CONNECT":
        return None
    if b"\ncontent-length\n" in lowered:
        lengths = [value for name, value in headers if name.lower() == b"content-length"]
        if lengths != [b"%d" % body_length]:
            return None
    elif body_length:
        return None
    lines = b"".join([b"%s: %s\r\n" % pair for pair in headers])
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, lines)


def parse_head(buffer: bytes | bytearray, method: bytes) -> Head | _NotPlain | None:
    """The answer's head at the start of ``buffer`` (to a request of ``method``), None
    while it may still be plain but is incomplete, or NOT_PLAIN when h11 must read it."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        # Incomplete: give h11 what it would already refuse, or end somewhere else.
        prefix = bytes(buffer[: len(_STATUS_PREFIX)])
        if (
            not _STATUS_PREFIX.startswith(prefix)
            or len(buffer) > MAX_HEAD_SIZE
            or buffer.count(b"\n") != buffer.count(b"\r\n")
        ):
            return NOT_PLAIN
        return None
    size = end + 4
    if size > MAX_HEAD_SIZE:
        return NOT_PLAIN
    head = bytes(buffer[:size])
    # A bare LF ends lines (and heads) for h11 too, elsewhere than here.
    if head.count(b"\n") != head.count(b"\r\n"):
        return NOT_PLAIN
    match = _HEAD.fullmatch(head)
    if match is None:
        return NOT_PLAIN
    status = int(match[1])
    if status < 200:
        return NOT_PLAIN
    block = match[2]
    length = None
    keep_alive = True
    for name, value in _FRAMING.findall(block):
        kind = name.lower()
        if kind == b"content-length":
            if length is not None or _DIGITS.fullmatch(value) is None:
                return NOT_PLAIN
            length = int(value)
        elif kind == b"transfer-encoding":
            return NOT_PLAIN
        elif b"close" in [token.strip().lower() for token in value.split(b",")]:
            keep_alive = False
    if method == b"HEAD" or status in _NO_BODY_STATUSES:
        length = 0
    elif length is None:
        # Read to the close: h11's http/1.0 framing.
        return NOT_PLAIN
    headers = [
        (name, value.strip(b" \t"))
        for name, _, value in (line.partition(b":") for line in block.split(b"\r\n")[:-1])
    ]
    return Head(status, headers, length, keep_alive, size)
