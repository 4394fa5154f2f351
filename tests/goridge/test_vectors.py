"""Every request frame captured from the PHP client decodes to what PHP meant to send."""

from __future__ import annotations

from typing import Any

import pytest

from tests.goridge.vectors import VECTORS, VECTORS_BY_SEQ
from trio_s3rpc.goridge.codecs import decode_args
from trio_s3rpc.goridge.frame import (
    CODEC_JSON,
    CODEC_MSGPACK,
    FrameDecoder,
    RPCRequest,
    parse_rpc_request,
)

EXPECTED: dict[int, tuple[str, int, dict[str, Any]]] = {
    1: ("s3.ListBuckets", CODEC_JSON, {}),
    2: ("s3.Exists", CODEC_JSON, {"bucket": "uploads", "pathname": "images/photo.jpg"}),
    3: (
        "s3.Write",
        CODEC_JSON,
        {
            "bucket": "uploads",
            "pathname": "a.bin",
            "content": "AP/+aGVsbG8=",
            "visibility": "public",
        },
    ),
    4: ("s3.ListBuckets", CODEC_MSGPACK, {}),
    5: ("s3.Exists", CODEC_MSGPACK, {"bucket": "uploads", "pathname": "images/photo.jpg"}),
    6: (
        "s3.Write",
        CODEC_MSGPACK,
        {
            "bucket": "uploads",
            "pathname": "a.bin",
            "content": "AP/+aGVsbG8=",
            "visibility": "public",
        },
    ),
    7: (
        "s3.Write",
        CODEC_MSGPACK,
        {"bucket": "uploads", "pathname": "a.bin", "content": "\x00\udcff\udcfehello"},
    ),
}


def decode_one(frame_bytes: bytes) -> RPCRequest:
    decoder = FrameDecoder()
    decoder.receive_data(frame_bytes)
    frame = decoder.next_frame()
    assert frame is not None
    assert decoder.next_frame() is None
    assert decoder.buffered == 0
    return parse_rpc_request(frame)


def test_every_vector_has_an_expectation() -> None:
    assert sorted(vector.seq for vector in VECTORS) == sorted(EXPECTED)


@pytest.mark.parametrize("seq", sorted(EXPECTED))
def test_vector_decodes_to_the_php_call(seq: int) -> None:
    method, codec, arguments = EXPECTED[seq]
    request = decode_one(VECTORS_BY_SEQ[seq].frame)
    assert (request.seq, request.method, request.codec) == (seq, method, codec)
    assert decode_args(request.codec, request.body) == arguments


def test_php_escaped_slash_is_unescaped() -> None:
    request = decode_one(VECTORS_BY_SEQ[2].frame)
    assert b"images\\/photo.jpg" in request.body
    assert decode_args(request.codec, request.body)["pathname"] == "images/photo.jpg"


def test_msgpack_str_with_invalid_utf8_recovers_exact_bytes() -> None:
    request = decode_one(VECTORS_BY_SEQ[7].frame)
    content = decode_args(request.codec, request.body)["content"]
    assert isinstance(content, str)
    assert content.encode("utf-8", "surrogateescape") == b"\x00\xff\xfehello"


def test_msgpack_base64_looking_content_stays_as_sent() -> None:
    request = decode_one(VECTORS_BY_SEQ[6].frame)
    content = decode_args(request.codec, request.body)["content"]
    assert content.encode("utf-8", "surrogateescape") == b"AP/+aGVsbG8="


@pytest.mark.parametrize(
    ("seq", "expected"), [(6, b"AP/+aGVsbG8="), (7, b"\x00\xff\xfehello")], ids=["base64", "binary"]
)
def test_msgpack_content_of_a_write_is_taken_as_raw_bytes(seq: int, expected: bytes) -> None:
    """What the server's dispatcher does: s3.Write names ``content`` as its byte field."""
    request = decode_one(VECTORS_BY_SEQ[seq].frame)
    args = decode_args(request.codec, request.body, frozenset({"content"}))
    assert args["content"] == expected
    assert type(args["content"]) is bytes
    others = {key: value for key, value in EXPECTED[seq][2].items() if key != "content"}
    assert {key: value for key, value in args.items() if key != "content"} == others


def test_all_vectors_in_one_read_come_out_in_order() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"".join(vector.frame for vector in VECTORS))
    seqs = []
    while (frame := decoder.next_frame()) is not None:
        seqs.append(parse_rpc_request(frame).seq)
    assert seqs == [vector.seq for vector in VECTORS]
    assert decoder.buffered == 0


def test_vectors_fed_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    methods = []
    for byte in b"".join(vector.frame for vector in VECTORS):
        decoder.receive_data(bytes([byte]))
        frame = decoder.next_frame()
        if frame is not None:
            methods.append(parse_rpc_request(frame).method)
    assert methods == [EXPECTED[vector.seq][0] for vector in VECTORS]
