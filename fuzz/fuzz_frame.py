"""Fuzz target for the Goridge frame decoder and RPC request parsing.

``fuzz_one`` feeds arbitrary bytes to :class:`FrameDecoder` twice, whole and
in small pieces, and requires the same frames and the same verdict both ways;
every frame must survive re-encoding, and every RPC request re-encoding and
argument decoding. It may raise only FrameError or CodecError.

    python fuzz/fuzz_frame.py --seconds 600
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import harness

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from trio_s3rpc.goridge.codecs import CodecError, decode_args, encode_result
from trio_s3rpc.goridge.frame import (
    CODEC_GOB,
    CODEC_JSON,
    CODEC_MSGPACK,
    CODEC_RAW,
    FLAG_CONTROL,
    Frame,
    FrameDecoder,
    FrameError,
    encode_frame,
    encode_rpc_error,
    encode_rpc_request,
    encode_rpc_response,
    parse_rpc_request,
)

MAX_PAYLOAD = 1 << 16
VECTORS = harness.ROOT / "tests" / "goridge" / "php-requests.txt"


@dataclass(slots=True)
class Outcome:
    frames: list[Frame] = field(default_factory=list)
    error: FrameError | None = None
    buffered: int = 0


def decode(data: bytes, piece: int) -> Outcome:
    decoder = FrameDecoder(MAX_PAYLOAD)
    outcome = Outcome()
    try:
        for start in range(0, len(data), piece):
            decoder.receive_data(data[start : start + piece])
            while (frame := decoder.next_frame()) is not None:
                outcome.frames.append(frame)
    except FrameError as exc:
        outcome.error = exc
    outcome.buffered = decoder.buffered
    return outcome


def decode_only(data: bytes) -> Frame:
    decoder = FrameDecoder(MAX_PAYLOAD)
    decoder.receive_data(data)
    frame = decoder.next_frame()
    assert frame is not None and decoder.buffered == 0, "re-encoded frame did not decode alone"
    return frame


def check_request(frame: Frame) -> None:
    """Parse an RPC request; a parsed one must re-encode identically and decode its argument."""
    request = parse_rpc_request(frame)
    again = parse_rpc_request(
        decode_only(encode_rpc_request(request.seq, request.method, request.codec, request.body))
    )
    assert again == request, f"{again} != {request}"
    answer = parse_rpc_request(decode_only(encode_rpc_error(request.seq, request.method, 0, "x")))
    assert (answer.seq, answer.method) == (request.seq, request.method)
    arguments = decode_args(request.codec, request.body)
    try:
        body = encode_result(request.codec, arguments)
    except CodecError as exc:
        raise AssertionError(f"decoded arguments do not re-encode: {exc}") from exc
    response = encode_rpc_response(request.seq, request.method, request.codec, body)
    assert parse_rpc_request(decode_only(response)).body == body


def fuzz_one(data: bytes) -> None:
    whole = decode(data, max(len(data), 1))
    pieces = decode(data, 1 + data[0] % 13 if data else 1)
    assert whole.frames == pieces.frames, "frames depend on how the bytes were split"
    assert str(whole.error) == str(pieces.error), f"{whole.error} != {pieces.error}"
    if whole.error is None:
        assert whole.buffered == pieces.buffered
        consumed = sum(12 + 4 * len(frame.options) + len(frame.payload) for frame in whole.frames)
        assert consumed + whole.buffered == len(data), "bytes lost or invented"
    rejection: FrameError | CodecError | None = whole.error
    for frame in whole.frames:
        copy = decode_only(encode_frame(frame.flags, frame.options, frame.payload, frame.stream))
        assert copy == frame, f"{copy} != {frame}"
        try:
            check_request(frame)
        except (FrameError, CodecError) as exc:
            rejection = rejection or exc
    if rejection is not None:
        raise rejection


def repair_crc(data: bytes) -> bytes:
    """Give the first header a correct CRC, so mutated lengths and versions get checked."""
    if len(data) < 12:
        return data
    return data[:6] + zlib.crc32(data[:6]).to_bytes(4, "little") + data[10:]


def seeds() -> list[bytes]:
    found = [
        bytes.fromhex(line.strip())
        for line in VECTORS.read_text().splitlines()
        if line and not line.startswith("#") and all(c in "0123456789abcdef" for c in line)
    ]
    found += [
        encode_rpc_request(1, "s3.Exists", CODEC_JSON, b'{"bucket":"b","pathname":"p"}'),
        encode_rpc_request(2, "s3.Write", CODEC_MSGPACK, encode_result(CODEC_MSGPACK, {"c": b""})),
        encode_rpc_request(3, "s3.ListBuckets", CODEC_RAW, b""),
        encode_rpc_request(4, "s3.Read", CODEC_GOB, b"\x00"),
        encode_rpc_error(5, "s3.Read", CODEC_JSON, "FILE_NOT_FOUND: gone"),
        encode_frame(FLAG_CONTROL, (), b"", stream=0x04),
        encode_frame(CODEC_JSON, tuple(range(10)), b"{}"),
        encode_frame(CODEC_JSON, (1, 200), b"s3.Exists{}"),
    ]
    found.append(found[0] + found[1] + found[-1])
    return found


TARGET = harness.Target(
    name="fuzz_frame",
    fuzz_one=fuzz_one,
    expected=(FrameError, CodecError),
    seeds=seeds(),
    repair=repair_crc,
)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
