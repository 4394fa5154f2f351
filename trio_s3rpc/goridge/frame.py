"""Goridge frames and RPC calls as bytes, without any I/O (sans-IO, like h11).

A frame is a 12-byte header (version and header length, flags, payload length,
CRC32 of the first six bytes, stream byte, reserved byte), up to ten uint32
option words, then the payload; every integer is little-endian. Bytes go into
:class:`FrameDecoder` through ``receive_data()`` and whole :class:`Frame` records
come out of ``next_frame()``; the decoder checks each header as soon as its
twelve bytes are present, so a corrupt or oversized frame is refused before its
payload is buffered. An RPC call is a frame with options ``[seq, method
length]`` whose payload is the method name followed by the encoded argument;
:func:`parse_rpc_request` and the ``encode_rpc_*`` helpers handle that layer.
Nothing here knows about sockets, trio or S3.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

VERSION = 1

FLAG_CONTROL = 0x01
CODEC_RAW = 0x04
CODEC_JSON = 0x08
CODEC_MSGPACK = 0x10
CODEC_GOB = 0x20
FLAG_ERROR = 0x40
CODEC_PROTO = 0x80
CODEC_MASK = CODEC_RAW | CODEC_JSON | CODEC_MSGPACK | CODEC_GOB | CODEC_PROTO

DEFAULT_MAX_PAYLOAD = 256 * 1024 * 1024

HEADER_SIZE = 12
MAX_OPTIONS = 10
_MIN_HEADER_WORDS = 3
_MAX_HEADER_WORDS = _MIN_HEADER_WORDS + MAX_OPTIONS
_MAX_UINT32 = 0xFFFFFFFF

# The CRC covers only the first six bytes, so the header is packed in two steps.
_CRC_PREFIX = struct.Struct("<BBI")
_HEADER = struct.Struct("<BBIIBB")
_OPTIONS = tuple(struct.Struct(f"<{count}I") for count in range(MAX_OPTIONS + 1))


class FrameError(Exception):
    """A frame that cannot be trusted; the connection must be closed.

    ``str()`` says what was wrong.
    """


# Frame and RPCRequest are made for every call; not frozen, since a frozen
# dataclass's __init__ sets each field through object.__setattr__ (about four
# times the cost). Read them, never change them.
@dataclass(slots=True)
class Frame:
    flags: int
    options: tuple[int, ...]
    payload: bytes
    stream: int = 0


def _header(flags: int, options: Sequence[int], payload_length: int, stream: int) -> bytes:
    """The 12 header bytes and the option words, validated (ValueError is a caller bug)."""
    if not 0 <= flags <= 0xFF:
        raise ValueError(f"flags must fit in one byte, got {flags}")
    if not 0 <= stream <= 0xFF:
        raise ValueError(f"stream must fit in one byte, got {stream}")
    if len(options) > MAX_OPTIONS:
        raise ValueError(f"a frame carries at most {MAX_OPTIONS} options, got {len(options)}")
    if payload_length > _MAX_UINT32:
        raise ValueError(f"payload of {payload_length} bytes exceeds the 4 GiB frame limit")
    first = (VERSION << 4) | (_MIN_HEADER_WORDS + len(options))
    crc = zlib.crc32(_CRC_PREFIX.pack(first, flags, payload_length))
    try:
        words = _OPTIONS[len(options)].pack(*options)
    except struct.error:
        raise ValueError(f"options must be uint32 values, got {list(options)}") from None
    return _HEADER.pack(first, flags, payload_length, crc, stream, 0) + words


def encode_frame(flags: int, options: Sequence[int], payload: bytes, stream: int = 0) -> bytes:
    """One whole frame: header, option words, payload."""
    return _header(flags, options, len(payload), stream) + payload


# Under this many bytes a payload's two copies (a bytearray slice, then bytes) cost
# less than the memoryview that saves one.
_COPY_TWICE_BELOW = 4096


class FrameDecoder:
    """Incremental frame decoder: feed bytes in any pieces, take whole frames out.

    After a :class:`FrameError` the decoder is poisoned and raises the same
    error again, since nothing after a broken frame can be located reliably.
    """

    __slots__ = (
        "_buffer", "_error", "_frame_size", "_max_payload", "buffered", "last_frame",
        "last_payload",
    )  # fmt: skip

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._max_payload = max_payload
        self._buffer = bytearray()
        self.buffered = 0
        """Bytes held but not yet returned as frames (read it, do not set it). An
        attribute rather than a property: the server reads it after every read, and
        CPython 3.11 runs a property as a function call."""
        # Size of the frame whose header was already checked, so waiting for a
        # large payload costs O(1) per call instead of re-parsing the header.
        self._frame_size = 0
        self._error: FrameError | None = None
        self.last_payload = 0
        """The payload size of the frame :meth:`next_call` returned last (read it)."""
        self.last_frame: Frame | None = None
        """The frame :meth:`next_call_keeping_frame` returned last, whole (read it)."""

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the connection."""
        self._buffer += data
        self.buffered = len(self._buffer)

    def next_frame(self) -> Frame | None:
        """The next whole frame, or None until more bytes arrive.

        Raises :class:`FrameError` as soon as a header is present and invalid.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        frame_size = self._frame_size
        if not frame_size:
            if len(buffer) < HEADER_SIZE:
                return None
            # What _check_header checks, without its call; it tells what is wrong.
            first, _, payload_length, crc, _, _ = _HEADER.unpack_from(buffer)
            words = first & 0x0F
            if (
                zlib.crc32(buffer[:6]) != crc
                or first >> 4 != VERSION
                or not _MIN_HEADER_WORDS <= words <= _MAX_HEADER_WORDS
                or payload_length > self._max_payload
            ):
                try:
                    self._check_header(buffer)
                except FrameError as exc:
                    self._error = exc
                    raise
            frame_size = self._frame_size = words * 4 + payload_length
        if len(buffer) < frame_size:
            return None
        first, flags, _, _, stream, _ = _HEADER.unpack_from(buffer)
        header_size = (first & 0x0F) * 4
        options = _OPTIONS[(first & 0x0F) - _MIN_HEADER_WORDS].unpack_from(buffer, HEADER_SIZE)
        # A memoryview slice copies the payload once; a bytearray slice would copy twice.
        with memoryview(buffer) as view:
            payload = bytes(view[header_size:frame_size])
        # Deleting from the front of a bytearray only moves its start: no memmove.
        del buffer[:frame_size]
        self.buffered = len(buffer)
        self._frame_size = 0
        return Frame(flags, options, payload, stream)

    def next_call(self) -> RPCRequest | Frame | None:
        """The next whole frame as the server takes it: a request frame already split
        as :func:`parse_rpc_request` splits it, a control frame as it is (its flags
        carry FLAG_CONTROL), or None until more bytes arrive.

        ``parse_rpc_request(next_frame())`` for every request frame, with the same
        errors, in one call and without the :class:`Frame` in between (every call
        comes through here). Raises :class:`FrameError` as :meth:`next_frame` does,
        and for a request frame :func:`parse_rpc_request` would refuse.
        """
        buffer = self._buffer
        if self._frame_size and len(buffer) < self._frame_size and self._error is None:
            return None  # a frame whose header was checked, still short
        if self._error is not None or len(buffer) < _RPC_HEADER.size:
            return self._call_of_next_frame()  # broken, or short
        # A frame begun earlier (any frame larger than one read) is split here too, its
        # header checked again (once per frame): through next_frame() its payload would
        # be copied twice, and the copies held at once.
        first, flags, payload_length, crc, _, _, seq, method_length = _RPC_HEADER.unpack_from(
            buffer
        )
        if (
            first != _RPC_FIRST
            or flags & FLAG_CONTROL
            or zlib.crc32(buffer[:6]) != crc
            or payload_length > self._max_payload
            or method_length > payload_length
        ):
            # Anything but a well-formed two-option request (a control frame, another
            # number of options, a bad header): next_frame() and parse_rpc_request()
            # say what it is.
            return self._call_of_next_frame()
        frame_size = _RPC_HEADER.size + payload_length
        if len(buffer) < frame_size:
            self._frame_size = frame_size  # its header checked, as next_frame() records it
            return None
        body_start = _RPC_HEADER.size + method_length
        method = buffer[_RPC_HEADER.size : body_start].decode("utf-8", "surrogateescape")
        if payload_length < _COPY_TWICE_BELOW:
            body = bytes(buffer[body_start:frame_size])
        else:
            # A memoryview slice copies the payload once; a bytearray slice would copy twice.
            with memoryview(buffer) as view:
                body = bytes(view[body_start:frame_size])
        del buffer[:frame_size]
        self.buffered = len(buffer)
        self._frame_size = 0
        self.last_payload = payload_length
        return RPCRequest(seq, method, flags & CODEC_MASK, body)

    def next_call_keeping_frame(self) -> RPCRequest | Frame | None:
        """:meth:`next_call`, keeping each frame whole in :attr:`last_frame` too (for a
        call passed on as it came: flags, stream byte and all)."""
        return self._call_of_next_frame()

    def _call_of_next_frame(self) -> RPCRequest | Frame | None:
        frame = self.next_frame()
        if frame is None:
            return None
        self.last_frame = frame
        self.last_payload = len(frame.payload)
        if frame.flags & FLAG_CONTROL:
            return frame
        return parse_rpc_request(frame)

    def _check_header(self, buffer: bytearray) -> int:
        """Validate the 12-byte header at the buffer's start; return the whole frame's size."""
        first, _, payload_length, crc, _, _ = _HEADER.unpack_from(buffer)
        version, words = first >> 4, first & 0x0F
        # The CRC comes first: on a mismatch the other fields are noise too.
        if zlib.crc32(buffer[:6]) != crc:
            raise FrameError(
                f"header CRC mismatch (not a Goridge frame, or the stream lost sync): "
                f"header says {crc:#010x}, bytes 0..5 give {zlib.crc32(buffer[:6]):#010x}"
            )
        if version != VERSION:
            raise FrameError(f"unsupported protocol version {version} (expected {VERSION})")
        if not _MIN_HEADER_WORDS <= words <= _MAX_HEADER_WORDS:
            raise FrameError(
                f"header length of {words} words is outside {_MIN_HEADER_WORDS}.."
                f"{_MAX_HEADER_WORDS} (at most {MAX_OPTIONS} options)"
            )
        if payload_length > self._max_payload:
            raise FrameError(
                f"payload of {payload_length} bytes exceeds the maximum of "
                f"{self._max_payload} bytes"
            )
        frame_size: int = words * 4 + payload_length
        return frame_size


@dataclass(slots=True)
class RPCRequest:
    seq: int
    method: str
    """Bytes of the name that are not UTF-8 are surrogate escapes (see parse_rpc_request)."""
    codec: int
    """``flags & CODEC_MASK``: 0 when the frame names no codec."""
    body: bytes
    """The encoded argument: the payload after the method name."""


def parse_rpc_request(frame: Frame) -> RPCRequest:
    """Split an RPC request frame into seq, method, codec and argument bytes."""
    if len(frame.options) != 2:
        raise FrameError(
            f"an RPC request needs 2 options [seq, method length], got {len(frame.options)}"
        )
    seq, method_length = frame.options
    payload = frame.payload
    if method_length > len(payload):
        raise FrameError(
            f"method length {method_length} exceeds the payload of {len(payload)} bytes"
        )
    # A name that is not UTF-8 is the call's problem, not the connection's: its
    # bytes are kept as surrogate escapes, so the error answer (on its seq) carries
    # them back as they came.
    method = payload[:method_length].decode("utf-8", "surrogateescape")
    return RPCRequest(seq, method, frame.flags & CODEC_MASK, payload[method_length:])


# An RPC frame's header: two options (seq, method length), so one fixed layout.
_RPC_FIRST = (VERSION << 4) | (_MIN_HEADER_WORDS + 2)
_RPC_HEADER = struct.Struct("<BBIIBBII")


def encode_rpc_response(seq: int, method: str, codec: int, body: bytes) -> bytes:
    """A successful answer: same seq, method and codec as the request.

    What ``encode_frame(codec, (seq, len(name)), name + body)`` gives, packed in
    one go (every call's answer is made here; requests and errors too)."""
    flags = codec
    name = method.encode("utf-8", "surrogateescape")
    if not 0 <= seq <= _MAX_UINT32:
        raise ValueError(f"seq must be a uint32, got {seq}")
    if not 0 <= flags <= 0xFF:
        raise ValueError(f"flags must fit in one byte, got {flags}")
    length = len(name) + len(body)
    if length > _MAX_UINT32:
        raise ValueError(f"payload of {length} bytes exceeds the 4 GiB frame limit")
    crc = zlib.crc32(_CRC_PREFIX.pack(_RPC_FIRST, flags, length))
    header = _RPC_HEADER.pack(_RPC_FIRST, flags, length, crc, 0, 0, seq, len(name))
    # One join copies the (possibly large) body once.
    return b"".join((header, name, body))


_rpc_frame = encode_rpc_response  # any RPC frame: (seq, method, flags, body)


def encode_rpc_request(seq: int, method: str, codec: int, body: bytes) -> bytes:
    """A request frame as the PHP client sends it: options ``[seq, len(method)]``."""
    return _rpc_frame(seq, method, codec, body)


def encode_rpc_error(seq: int, method: str, codec: int, message: str) -> bytes:
    """An error answer: flags ``codec | FLAG_ERROR``, body the UTF-8 message.

    Messages may quote client input that carries lone surrogates (from
    msgpack's surrogateescape); those are written as ``\\udcff`` escapes so the
    body is always valid UTF-8 and encoding never fails.
    """
    return _rpc_frame(seq, method, codec | FLAG_ERROR, message.encode("utf-8", "backslashreplace"))
