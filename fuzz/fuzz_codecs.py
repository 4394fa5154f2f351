"""Fuzz target for argument decoding (JSON, msgpack, raw and the refused codecs).

The first input byte picks the codec, the rest is the argument body.
``fuzz_one`` may raise only CodecError; whatever it decodes must be a dict with
string keys whose encoding is a fixed point (encode, decode, encode again gives
the same bytes), so an answer built from decoded values can always be sent.

    python fuzz/fuzz_codecs.py --seconds 600
"""

from __future__ import annotations

import sys

import harness

from trio_s3rpc.goridge.codecs import CodecError, decode_args, encode_result
from trio_s3rpc.goridge.frame import (
    CODEC_GOB,
    CODEC_JSON,
    CODEC_MSGPACK,
    CODEC_PROTO,
    CODEC_RAW,
    FLAG_ERROR,
    FrameDecoder,
    parse_rpc_request,
)

# Weighted towards the codecs that really decode something.
CODECS = (
    *(CODEC_JSON, CODEC_MSGPACK, CODEC_RAW) * 4,
    CODEC_GOB,
    CODEC_PROTO,
    0,
    CODEC_JSON | CODEC_MSGPACK,
    CODEC_MSGPACK | FLAG_ERROR,
)
VECTORS = harness.ROOT / "tests" / "goridge" / "php-requests.txt"


def fuzz_one(data: bytes) -> None:
    codec = CODECS[data[0] % len(CODECS)] if data else CODEC_JSON
    arguments = decode_args(codec, data[1:])
    assert isinstance(arguments, dict), type(arguments)
    assert all(isinstance(key, str) for key in arguments)
    try:
        encoded = encode_result(codec, arguments)
        again = encode_result(codec, decode_args(codec, encoded))
    except CodecError as exc:
        raise AssertionError(f"decoded arguments do not survive re-encoding: {exc}") from exc
    assert again == encoded, f"{encoded!r} != {again!r}"


def selector(codec: int) -> bytes:
    return bytes([CODECS.index(codec)])


def seeds() -> list[bytes]:
    found = []
    for line in VECTORS.read_text().splitlines():
        if line and not line.startswith("#") and all(c in "0123456789abcdef" for c in line):
            decoder = FrameDecoder()
            decoder.receive_data(bytes.fromhex(line))
            frame = decoder.next_frame()
            assert frame is not None
            request = parse_rpc_request(frame)
            found.append(selector(request.codec) + request.body)
    sample = {
        "bucket": "uploads",
        "pathname": "dir/ü.txt",
        "content": b"\x00\xff",
        "config": {"region": "us-east-1", "parts": [1, 2.5, None, True, -(2**63)]},
    }
    for codec in (CODEC_JSON, CODEC_MSGPACK, CODEC_RAW):
        found.append(selector(codec) + encode_result(codec, sample))
    found += [
        selector(CODEC_JSON) + b'{"a":[[[[{"b":"\\ud800\\u00e9"}]]]],"n":1e308,"m":-0.0}',
        selector(CODEC_MSGPACK) + b"\x81\xa1a\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
        selector(CODEC_MSGPACK) + b"\x81\xa1a\xd6\xff\x00\x00\x00\x01",
        selector(CODEC_MSGPACK) + b"\x82\xa1a\xa3\xed\xa0\x80\xa1b\xc4\x00",
        selector(CODEC_RAW),
        selector(CODEC_GOB) + b"{}",
    ]
    return found


TARGET = harness.Target(
    name="fuzz_codecs",
    fuzz_one=fuzz_one,
    expected=(CodecError,),
    seeds=seeds(),
)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
