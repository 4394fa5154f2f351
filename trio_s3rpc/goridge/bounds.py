"""How many values an encoded argument holds, counted before it is decoded.

The JSON and msgpack decoders are C loops that hold the interpreter lock
from the first byte to the last: a frame of a million tiny map entries
stalls every other task for seconds, even when decoded in a worker thread.
:func:`check_counts` bounds that work up front. It counts the values of an
encoded argument (every key, value and list item), and the map entries among
them, without building them, and refuses an argument past
:data:`MAX_VALUES` or :data:`MAX_MAP_ENTRIES` with a :class:`CodecError`
(exactly for msgpack; a JSON text with fewer commas than ``MAX_VALUES`` passes
uncounted, so at most about twice as many values).
Strings and byte strings are skipped by their length, so a large ``content``
costs nothing; only the many-small-values case pays a Python loop, which
runs where the decoding does (in a worker thread for large frames) and lets
go of the lock as it goes.

Real calls stay far below both limits: user metadata is at most 2 KB, and
the longest list a call takes is DeleteMany's pathnames.
"""

from __future__ import annotations

import re
import struct

from trio_s3rpc.goridge.codecs import CodecError
from trio_s3rpc.goridge.frame import CODEC_JSON, CODEC_MASK, CODEC_MSGPACK, CODEC_RAW

MAX_VALUES = 2_000_000
"""Values (keys, values and list items, at any depth) one argument may hold."""
MAX_MAP_ENTRIES = 100_000
"""Map entries (at any depth) one argument may hold; real calls send a few dozen."""
_FEW = 64
"""So many commas and colons a JSON body may hold and be let through without counting."""

# A JSON string (escapes included) or one structural character.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[,:\[{]')

# msgpack: bytes after the type byte that hold a length, for str/bin/ext/containers.
_LENGTH = {
    0xC4: 1, 0xC5: 2, 0xC6: 4,  # bin
    0xC7: 1, 0xC8: 2, 0xC9: 4,  # ext (one more byte: the type)
    0xD9: 1, 0xDA: 2, 0xDB: 4,  # str
    0xDC: 2, 0xDD: 4,  # array
    0xDE: 2, 0xDF: 4,  # map
}  # fmt: skip
# msgpack: fixed sizes after the type byte of the other types.
_FIXED = {
    0xC0: 0, 0xC2: 0, 0xC3: 0,  # nil, false, true
    0xCA: 4, 0xCB: 8,  # float
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,  # uint
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,  # int
    0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,  # fixext: type byte + data
}  # fmt: skip
_UNSIGNED = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}


def check_counts(codec: int, body: bytes) -> None:
    """Refuse (CodecError) an argument holding more values or map entries than allowed.

    Malformed input is left to the decoder, which names what is wrong.
    """
    codec &= CODEC_MASK
    if codec == CODEC_MSGPACK:
        # Every value takes a byte, every map entry two: small bodies cannot pass.
        if len(body) > MAX_VALUES or len(body) > 2 * MAX_MAP_ENTRIES:
            _check_msgpack(body)
    elif codec in (CODEC_JSON, CODEC_RAW) and (
        # A comma comes before every item but each container's first, a colon with
        # every map entry: counted in the whole text (strings too) they are an upper
        # bound, and only a body past it is scanned token by token. A body with few
        # of either (a chunk of base64: none) is let through after a few memchr
        # scans, without counting every byte of it.
        (_occurs_more_than(body, b",", _FEW) or _occurs_more_than(body, b":", _FEW))
        and (body.count(b",") >= MAX_VALUES or body.count(b":") > MAX_MAP_ENTRIES)
    ):
        _check_json(body)


def holds_many(codec: int, body: bytes, values: int) -> bool:
    """Whether the argument may hold more than ``values`` values: worth decoding in a
    worker thread. Cheap for any body: msgpack is scanned only that far, and JSON's
    commas and colons are counted in C (an upper bound)."""
    codec &= CODEC_MASK
    if codec == CODEC_MSGPACK:
        return bool(_msgpack_excess(body, values, values))
    return _occurs_more_than(body, b",", values) or _occurs_more_than(body, b":", values)


def _occurs_more_than(body: bytes, byte: bytes, times: int) -> bool:
    """``body.count(byte) > times``, stopping at the first past it (``find`` is a memchr,
    several times faster than ``count`` over a large content with few of them)."""
    position = -1
    for _ in range(times + 1):
        position = body.find(byte, position + 1)
        if position < 0:
            return False
    return True


def _refuse(values: int, entries: int) -> CodecError:
    if entries > MAX_MAP_ENTRIES:
        return CodecError(
            f"arguments hold more than {MAX_MAP_ENTRIES} map entries "
            "(user metadata is limited to 2 KB)"
        )
    return CodecError(f"arguments hold more than {MAX_VALUES} values")


def _check_json(body: bytes) -> None:
    values = 1
    entries = 0
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token == b",":
            values += 1
        elif token == b":":
            entries += 1
            values += 1
        if values > MAX_VALUES or entries > MAX_MAP_ENTRIES:
            raise _refuse(values, entries)


def _check_msgpack(body: bytes) -> None:
    excess = _msgpack_excess(body, MAX_VALUES, MAX_MAP_ENTRIES)
    if excess:
        raise _refuse(0, MAX_MAP_ENTRIES + 1) if excess == "entries" else _refuse(MAX_VALUES + 1, 0)


def _msgpack_excess(body: bytes, max_values: int, max_entries: int) -> str:
    """``"entries"`` or ``"values"`` when the msgpack value in ``body`` holds more map
    entries or values than allowed, scanned only until it does; else (malformed too) ""."""
    end = len(body)
    position = 0
    pending = 1  # values still to read; containers add theirs
    values = 0
    entries = 0
    while pending and position < end:
        kind = body[position]
        position += 1
        pending -= 1
        values += 1
        added = 0
        if kind <= 0x7F or kind >= 0xE0:  # fixint
            continue
        if kind <= 0x8F:  # fixmap
            added = 2 * (kind & 0x0F)
        elif kind <= 0x9F:  # fixarray
            added = kind & 0x0F
        elif kind <= 0xBF:  # fixstr
            position += kind & 0x1F
        elif kind in _FIXED:
            position += _FIXED[kind]
        elif kind in _LENGTH:
            size = _LENGTH[kind]
            if position + size > end:
                return ""  # truncated: the decoder says so
            (length,) = _UNSIGNED[size].unpack_from(body, position)
            position += size
            if kind <= 0xC9:
                position += length + (1 if kind >= 0xC7 else 0)
            elif kind <= 0xDB:
                position += length
            else:
                added = length if kind <= 0xDD else 2 * length
        else:
            return ""  # 0xC1, never used: the decoder says so
        if added:
            if kind <= 0x8F or kind >= 0xDE:
                entries += added // 2
            pending += added
            # Each value takes at least a byte: more announced than the body holds
            # is malformed, and the decoder says so.
            if pending > end - position:
                return ""
            if entries > max_entries:
                return "entries"
            if values + pending > max_values:
                return "values"
    return ""
