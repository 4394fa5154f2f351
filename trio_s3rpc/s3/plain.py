"""HTTP/1.1 in its plain form, written and read without h11's per-event Python work.

S3 services answer small requests in one form: ``HTTP/1.1 <status>``, well-formed
header lines, a ``Content-Length``, CRLF line ends. For requests and answers
in exactly that form, :mod:`trio_s3rpc.s3.http11` writes the request head with
:func:`request_head` and reads the answer's head with :func:`parse_head`
(sans-IO, as h11: bytes in, a result out), and counts the body's bytes
itself. Both functions only *recognise* the plain form, with byte-table
checks (``bytes.translate``) and no per-header Python loop beyond a split; anything else
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

from dataclasses import dataclass
from typing import Final

# h11's ABNF (h11/_abnf.py) as tables for bytes.translate: an allowed byte becomes
# 0, any other 1, so a text is allowed when no 1 is left in its translation (a
# table lookup and a memchr per byte, where a regular expression costs tens of
# instructions). Narrowed: a value's bytes are visible ASCII, obs-text and
# spaces (h11 also takes tabs and C0 controls but NUL, which then go to h11).
# LF is allowed in both, as the separator of names or values joined for one check.
_TOKEN_BYTES: Final = (
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
)
_VALUE_BYTES: Final = bytes([*range(0x20, 0x7F), *range(0x80, 0x100), 0x0A])
_TOKENS: Final = bytes([0 if byte in _TOKEN_BYTES else 1 for byte in range(256)])
_VALUES: Final = bytes([0 if byte in _VALUE_BYTES else 1 for byte in range(256)])
# The head's own table: values, and CR for its line ends (bare ones are counted).
_HEAD_BYTES: Final = bytes(
    [0 if byte in _VALUE_BYTES or byte == 0x0D else 1 for byte in range(256)]
)
# An int, not b"\x01": ``bytes in bytes`` first tries its operand as an int and
# raises (and catches) a TypeError when it is not, which costs more than the search.
_REFUSED: Final = 1

_STATUS_PREFIX: Final = b"HTTP/1.1 "
# As h11's max_incomplete_event_size in http11.py: a longer head goes to h11 to refuse.
MAX_HEAD_SIZE: Final = 100 * 1024
_NO_BODY_STATUSES: Final = (204, 304)
# h11 takes up to 20 digits; more than 19 go to h11.
_MAX_LENGTH_DIGITS: Final = 19


def _tokens(joined: bytes) -> bool:
    """Whether ``joined`` is tokens joined by LF (none of them empty)."""
    return (
        bool(joined)
        and _REFUSED not in joined.translate(_TOKENS)
        and joined.find(b"\n\n") < 0
        and joined[0] != 0x0A
        and joined[-1] != 0x0A
    )


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
    count = len(headers)
    names = b"\n".join([name for name, _ in headers])
    values = [value for _, value in headers]
    joined = b"\n".join(values)
    if (
        not count
        or names.count(b"\n") != count - 1
        or not _tokens(names)
        or joined.count(b"\n") != count - 1
        or _REFUSED in joined.translate(_VALUES)
        or any([value.strip(b" ") != value for value in values])
        or 10 in method  # LF
        or not _tokens(method)
        or not target
        or _REFUSED in target.translate(_VALUES)
        or 32 in target  # space
        or 10 in target  # LF
        or not target.isascii()
    ):
        return None
    # h11 writes Host first; ours is first already, and then the order is kept.
    lowered = b"\n" + names.lower() + b"\n"
    if not lowered.startswith(b"\nhost\n") or lowered.find(b"\nhost\n", 1) >= 0:
        return None
    if (
        lowered.find(b"\ntransfer-encoding\n") >= 0
        or lowered.find(b"\nconnection\n") >= 0
        or method == b"CONNECT"
    ):
        return None
    if lowered.find(b"\ncontent-length\n") >= 0:
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
    if head.count(b"\n") != head.count(b"\r\n") or not head.startswith(_STATUS_PREFIX):
        return NOT_PLAIN
    code = head[9:12]
    line_end = head.find(b"\r\n")
    if (
        not (code.isdigit() and len(code) == 3)
        or (line_end != 12 and head[12:13] != b" ")
        or head.count(b"\r") != head.count(b"\r\n")
        or _REFUSED in head.translate(_HEAD_BYTES)
    ):
        return NOT_PLAIN
    status = int(code)
    if status < 200:
        return NOT_PLAIN
    # Lines between the status line and the blank one; each "name:value".
    lines = head[line_end + 2 : size - 4].split(b"\r\n") if size - 4 > line_end else []
    fields = [line.partition(b":") for line in lines]
    count = len(fields)
    names = b"\n".join([name for name, _, _ in fields])
    if count and (
        b"".join([colon for _, colon, _ in fields]) != b":" * count
        or names.count(b"\n") != count - 1
        or not _tokens(names)
    ):
        return NOT_PLAIN
    headers = [(name, value.strip(b" ")) for name, _, value in fields]
    lowered = names.lower().split(b"\n")
    if b"transfer-encoding" in lowered:
        return NOT_PLAIN
    keep_alive = True
    if b"connection" in lowered:
        for name, value in headers:
            if name.lower() == b"connection" and b"close" in [
                token.strip(b" \t").lower() for token in value.split(b",")
            ]:
                keep_alive = False
    length = None
    if b"content-length" in lowered:
        if lowered.count(b"content-length") != 1:
            return NOT_PLAIN
        digits = headers[lowered.index(b"content-length")][1]
        if not digits.isdigit() or len(digits) > _MAX_LENGTH_DIGITS:
            return NOT_PLAIN
        length = int(digits)
    if method == b"HEAD" or status in _NO_BODY_STATUSES:
        length = 0
    elif length is None:
        # Read to the close: h11's http/1.0 framing.
        return NOT_PLAIN
    return Head(status, headers, length, keep_alive, size)
