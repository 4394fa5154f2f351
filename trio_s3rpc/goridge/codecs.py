"""Argument and result encodings of Goridge RPC: JSON, msgpack and raw.

A request's codec flag says how its argument object is encoded; the answer
goes back in the same codec. :func:`decode_args` turns the bytes after the
method name into a ``dict`` and raises only :class:`CodecError`, whatever the
input, so a bad argument becomes an error answer and never a dropped
connection. It follows what PHP really sends: an empty PHP array arrives as
``[]`` (JSON) or ``0x90`` (msgpack) and means no arguments, and msgpack strings
may hold arbitrary bytes. A method's byte fields (``binary_fields``: Write's
``content``) are taken from msgpack *str* or *bin* as the bytes they are, with
no UTF-8 pass: PHP packs every string as *str*, and decoding 4 MiB of content
as text only to encode it back cost several times the call's own work. Every
other string is text, with undecodable bytes kept as surrogate escapes so the
method layer can name the field that is not UTF-8. Under JSON and raw, byte values cannot travel
as such and go as base64 text (:data:`BINARY_AS_BASE64`); under msgpack they
are packed as bin. A large JSON argument whose last member is a byte field (how
this package's PHP client sends UploadChunk and Write) has that field decoded
from the body's bytes straight to bytes (:func:`_split_json`), with the same
result. Go-only codecs (gob, proto) are refused with a clear message.
"""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import msgpack
import pybase64

from trio_s3rpc.goridge.frame import (
    CODEC_GOB,
    CODEC_JSON,
    CODEC_MASK,
    CODEC_MSGPACK,
    CODEC_PROTO,
    CODEC_RAW,
)

BINARY_AS_BASE64: frozenset[int] = frozenset({CODEC_JSON, CODEC_RAW})
"""Codecs under which byte fields travel as base64 text."""

MAX_NESTING = 32
"""Deepest nesting of maps and lists accepted in an argument; real calls use 3."""

_NAMES = {
    CODEC_RAW: "raw",
    CODEC_JSON: "json",
    CODEC_MSGPACK: "msgpack",
    CODEC_GOB: "gob",
    CODEC_PROTO: "proto",
}
_SCALARS = (str, bytes, int, float, bool, type(None))


class CodecError(Exception):
    """The argument cannot be decoded; ``str()`` is a clear message (becomes INVALID_REQUEST)."""


def codec_name(codec: int) -> str:
    """``"json"``, ``"msgpack"``, ``"raw"``, ``"gob"``, ``"proto"`` or ``"none"``.

    Only the codec bits count; several set at once are joined with ``+``.
    """
    names = [name for bit, name in _NAMES.items() if codec & bit]
    return "+".join(names) if names else "none"


# What PHP sends for no arguments ({}, [], null; msgpack's empty map and array).
_NO_ARGUMENTS = {
    CODEC_JSON: frozenset({b"{}", b"[]", b"null"}),
    CODEC_MSGPACK: frozenset({b"\x80", b"\x90", b"\xc0"}),
}


def decode_args(
    codec: int, body: bytes, binary_fields: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The argument object encoded in ``body``; raises only CodecError.

    ``binary_fields``: top-level fields that carry bytes; under msgpack they
    are answered as ``bytes`` whether PHP packed them as str or bin.
    """
    codec &= CODEC_MASK
    empty = _NO_ARGUMENTS.get(codec)
    if empty is not None and body in empty:
        return {}
    if codec == CODEC_JSON:
        return _decode_json(body, binary_fields)
    if codec == CODEC_MSGPACK:
        return _decode_msgpack(body, binary_fields)
    if codec == CODEC_RAW:
        return _decode_json(body, binary_fields) if body else {}
    _unsupported(codec)


def encode_result(codec: int, result: Mapping[str, Any]) -> bytes:
    """``result`` in the given codec; bytes become base64 text under JSON and raw."""
    codec &= CODEC_MASK
    if codec in BINARY_AS_BASE64:
        # _encode_json's first step, here: most answers hold no bytes, and are
        # encoded without its call.
        for value in result.values():
            if isinstance(value, bytes):
                return _encode_json(result)
        return "".join(_encode_chunks(result, 0)).encode("ascii")
    if codec == CODEC_MSGPACK:
        packed: bytes = msgpack.packb(result, use_bin_type=True, unicode_errors="surrogateescape")
        return packed
    _unsupported(codec)


def encode_result_in_pieces(codec: int, result: Mapping[str, Any]) -> bytes:
    """What :func:`encode_result` gives, made in many small steps.

    For a large answer encoded in a worker thread: one C call over a list of
    hundreds of thousands of entries holds the interpreter lock (and so the
    event loop) throughout, while between small steps the lock passes.
    """
    codec &= CODEC_MASK
    if codec in BINARY_AS_BASE64:
        if any(isinstance(value, bytes) for value in result.values()):
            return _encode_json(result)  # one large string: cheap whole
        return "".join(_JSON_ENCODER.iterencode(result)).encode("ascii")
    if codec == CODEC_MSGPACK:
        packer = msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape")
        pieces = [packer.pack_map_header(len(result))]
        for key, value in result.items():
            pieces.append(packer.pack(key))
            if isinstance(value, list):
                pieces.append(packer.pack_array_header(len(value)))
                pieces.extend(packer.pack(item) for item in value)
            else:
                pieces.append(packer.pack(value))
        return b"".join(pieces)
    _unsupported(codec)


def _unsupported(codec: int) -> NoReturn:
    if codec == 0:
        raise CodecError("the frame names no codec; use JSON or msgpack")
    name = codec_name(codec)
    if "+" in name:
        raise CodecError(f"the frame sets several codec flags ({name}); set exactly one")
    raise CodecError(f"the {name} codec is not supported; use JSON or msgpack")


def _encode_json(result: Mapping[str, Any]) -> bytes:
    """JSON text of an answer; top-level bytes (Read's content) are spliced in as base64.

    Base64 text never needs JSON escaping, so it is joined in as it is rather
    than passed through the encoder's string scan: for a 64 KiB answer that is
    about a third of the time (measured: 277 µs against 89 µs). The pieces are
    joined once, so a large content is copied once after its encoding, not
    once per ``+``.
    """
    # Loops rather than comprehensions: each comprehension is a function call.
    for value in result.values():
        if isinstance(value, bytes):
            break
    else:
        return "".join(_encode_chunks(result, 0)).encode("ascii")
    rest = {}
    spliced: list[bytes] = []
    for key, value in result.items():
        if isinstance(value, bytes):
            # pybase64's SIMD encoder (4 MiB: 0.3 ms against binascii's 7.5); the
            # text goes into the one join below as it is, never copied before.
            spliced += (b",", _quoted(key).encode("ascii"), b':"', _b64(value), b'"')
        else:
            rest[key] = value
    head = "".join(_encode_chunks(rest, 0)).encode("ascii")
    if not rest:
        spliced[0] = b""  # "{}" has no member before the first spliced one
    return b"".join((head[:-1], *spliced, b"}"))


_b64 = pybase64.b64encode


def _json_default(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return _b64(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} cannot be encoded as JSON")


# Built once: json.dumps and json.loads with any argument but the text build a
# new encoder or decoder on every call, which for a small answer such as
# ListBuckets' is half of the time (measured: 5.6 µs against 2.8 µs to encode,
# 4.5 µs against 2.1 µs to decode). Same settings as those calls had.
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)
_quoted = json.encoder.encode_basestring_ascii  # what json.dumps(key) gives
# JSONEncoder.encode builds a C encoder anew on every call (and a closure, and a
# dict to detect cycles): the one C encoder made here, with _JSON_ENCODER's settings,
# serves every answer: ``"".join(_encode_chunks(result, 0))`` is
# ``_JSON_ENCODER.encode(result)``. Without the cycle check: answers are fresh dicts
# and lists (rpc/decoding.py), and a cycle would still end, as RecursionError.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_chunks: Callable[[Any, int], Sequence[str]] = (
    (lambda value, _level: [_JSON_ENCODER.encode(value)])
    if _c_make_encoder is None
    else _c_make_encoder(None, _json_default, _quoted, None, ":", ",", False, False, True)
)


def _refuse_constant(name: str) -> NoReturn:
    raise CodecError(f"invalid JSON: {name} is not a JSON value")


def _parse_float(text: str) -> float:
    # Python reads 1e400 as inf, which JSON cannot carry back to the caller.
    value = float(text)
    if math.isinf(value):
        raise CodecError(f"invalid JSON: number {text[:40]} is out of range")
    return value


SPLIT_JSON_FROM = 64 * 1024
"""JSON arguments from this size on are looked at by :func:`_split_json`."""

# How far into a JSON argument its last member's name is looked for.
_SPLIT_SCAN = 8192


def _decode_json(body: bytes, binary_fields: frozenset[str] = frozenset()) -> dict[str, Any]:
    if binary_fields and len(body) >= SPLIT_JSON_FROM:
        split = _split_json(body, binary_fields)
        if split is not None:
            return split
    # Decode explicitly: json.loads(bytes) would guess UTF-16/32 from the first bytes.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(
            f"arguments are not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _JSON_DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise CodecError(
            f"invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}"
        ) from None
    except RecursionError:
        raise CodecError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise CodecError(f"invalid JSON: {exc}") from None
    return _as_arguments(value, "a JSON object")


_JSON_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_constant=_refuse_constant)


def _split_json(body: bytes, binary_fields: frozenset[str]) -> dict[str, Any] | None:
    """``_decode_json(body)`` with its last member, a byte field's base64 string,
    already decoded to bytes; None when the body does not end so, or anything
    about it is not plain (then the whole is decoded as JSON, which says what).

    PHP's client sends a chunk's content last: ``{...,"content":"<base64>"}``.
    Decoded as JSON, that text is copied twice (the body as text, then the
    string) and scanned a character at a time (20 ms for 4 MiB of content); here
    the base64 is decoded from the body itself, and only the small rest is JSON.
    The answer is the JSON decoder's then the typed layer's: the rest, its last
    ``,`` made a ``}``, parses as an object only if it ends outside any string,
    so the member after it is the body's last one, and replaces one of the same
    name, as JSON's last one wins; pybase64 with ``validate=True`` refuses any
    quote, backslash, control byte or non-ASCII byte, so the text between the
    quotes is the JSON string as it is, and what it decodes is what
    ``_from_base64`` (rpc/decoding.py) gives, which tries it first.
    """
    if not body.endswith(b'"}'):
        return None
    for name in binary_fields:
        marker = b'"' + name.encode("utf-8") + b'":"'
        # The last one within the scan: the content itself holds no quote.
        at = body.rfind(marker, 0, min(len(body), _SPLIT_SCAN + len(marker)))
        if at < 0:
            continue
        head = body[:at]
        if head.endswith(b","):
            rest_text = head[:-1] + b"}"
        elif head.strip(b" \t\r\n") == b"{":
            rest_text = b"{}"
        else:
            return None
        with memoryview(body) as view:
            try:
                content = pybase64.b64decode(view[at + len(marker) : -2], validate=True)
            except (binascii.Error, ValueError):
                return None
        try:
            rest = _decode_json(rest_text)
        except CodecError:
            return None
        rest[name] = content
        return rest
    return None


def _refuse_extension(code: int, data: bytes) -> NoReturn:
    raise CodecError(f"msgpack extension type {code} is not supported")


# msgpack's wording when a key is neither str nor bytes; reworded for PHP callers.
_STRICT_KEY_SUFFIX = " is not allowed for map key when strict_map_key=True"


def _decode_msgpack(body: bytes, binary_fields: frozenset[str]) -> dict[str, Any]:
    # unpackb caps every length at len(body), so a lying length cannot allocate
    # more than the frame already holds. With byte fields to keep, every string
    # comes out as bytes and only the text ones are decoded afterwards.
    raw = bool(binary_fields)
    try:
        value = msgpack.unpackb(
            body, raw=raw, unicode_errors="surrogateescape", ext_hook=_refuse_extension
        )
    except msgpack.ExtraData as exc:
        extra = len(exc.extra)
        raise CodecError(
            f"invalid msgpack: {extra} byte{'s' if extra != 1 else ''} of trailing data "
            "after the arguments"
        ) from None
    except msgpack.StackError:
        raise CodecError("invalid msgpack: nested too deeply") from None
    except msgpack.FormatError:
        raise CodecError("invalid msgpack: malformed data (e.g. the reserved byte 0xc1)") from None
    except ValueError as exc:  # truncated data, lengths beyond the data, non-string keys
        text = str(exc)
        if text.endswith(_STRICT_KEY_SUFFIX):
            text = f"map keys must be strings, got {text.removesuffix(_STRICT_KEY_SUFFIX)}"
        raise CodecError(f"invalid msgpack: {text}") from None
    if raw and isinstance(value, dict):
        _texts_of_raw(value, binary_fields)
    return _as_arguments(value, "a msgpack map")


def _texts_of_raw(root: dict[Any, Any], binary_fields: frozenset[str]) -> None:
    """Decode, in place, every string of a ``raw=True`` unpack but ``root``'s
    ``binary_fields`` as text (undecodable bytes as surrogate escapes, as
    ``raw=False`` gives them). Iterative, so nesting cannot exhaust the stack."""
    pending: list[dict[Any, Any] | list[Any]] = [root]
    while pending:
        container = pending.pop()
        if isinstance(container, dict):
            items = list(container.items())
            container.clear()
            for key, item in items:
                if isinstance(key, bytes):
                    key = key.decode("utf-8", "surrogateescape")
                if isinstance(item, bytes):
                    if container is not root or key not in binary_fields:
                        item = item.decode("utf-8", "surrogateescape")
                elif isinstance(item, dict | list):
                    pending.append(item)
                container[key] = item
        else:
            for index, item in enumerate(container):
                if isinstance(item, bytes):
                    container[index] = item.decode("utf-8", "surrogateescape")
                elif isinstance(item, dict | list):
                    pending.append(item)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _as_arguments(value: object, expected: str) -> dict[str, Any]:
    """Check the decoded top level is an argument object.

    PHP's empty array (``[]``) and ``null`` (``$rpc->call('s3.ListBuckets', null)``)
    both mean "no arguments", as they do for RoadRunner's own RPC.
    """
    if value is None or (isinstance(value, list) and not value):
        return {}
    if not isinstance(value, dict):
        raise CodecError(f"arguments must be {expected}, got {_kind(value)}")
    _check_tree(value)
    return value


def _check_tree(root: dict[str, Any]) -> None:
    """Reject non-string map keys, values of unexpected types, and deep nesting.

    Iterative, so a hostile argument cannot exhaust the Python stack here or
    in the method layer that walks the value afterwards.
    """
    pending: list[tuple[object, int]] = [(root, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            if depth > MAX_NESTING:
                raise CodecError(f"arguments are nested deeper than {MAX_NESTING} levels")
            for key, item in value.items():
                if not isinstance(key, str):
                    raise CodecError(f"map keys must be strings, got {_kind(key)}")
                if isinstance(item, dict | list):
                    pending.append((item, depth + 1))
                elif not isinstance(item, _SCALARS):
                    raise CodecError(f"value of type {_kind(item)} is not supported")
        elif isinstance(value, list):
            if depth > MAX_NESTING:
                raise CodecError(f"arguments are nested deeper than {MAX_NESTING} levels")
            for item in value:
                if isinstance(item, dict | list):
                    pending.append((item, depth + 1))
                elif not isinstance(item, _SCALARS):
                    raise CodecError(f"value of type {_kind(item)} is not supported")
