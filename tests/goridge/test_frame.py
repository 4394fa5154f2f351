"""Frame encoding, incremental decoding, RPC framing, and refusal of untrustworthy frames."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc.goridge.frame import (
    CODEC_GOB,
    CODEC_JSON,
    CODEC_MASK,
    CODEC_MSGPACK,
    CODEC_RAW,
    DEFAULT_MAX_PAYLOAD,
    FLAG_CONTROL,
    FLAG_ERROR,
    Frame,
    FrameDecoder,
    FrameError,
    RPCRequest,
    encode_frame,
    encode_rpc_error,
    encode_rpc_request,
    encode_rpc_response,
    parse_rpc_request,
)

uint32 = st.integers(min_value=0, max_value=2**32 - 1)
frames = st.builds(
    Frame,
    flags=st.integers(min_value=0, max_value=255),
    options=st.lists(uint32, max_size=10).map(tuple),
    payload=st.binary(max_size=300),
    stream=st.integers(min_value=0, max_value=255),
)


def raw_header(
    *,
    version: int = 1,
    words: int = 3,
    flags: int = CODEC_JSON,
    payload_length: int = 0,
    crc: int | None = None,
    stream: int = 0,
) -> bytes:
    """A 12-byte header with any field value; the CRC is right unless given."""
    prefix = struct.pack("<BBI", (version << 4) | words, flags, payload_length)
    if crc is None:
        crc = zlib.crc32(prefix)
    return prefix + struct.pack("<IBB", crc, stream, 0)


def decode_all(data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> list[Frame]:
    decoder = FrameDecoder(max_payload)
    decoder.receive_data(data)
    found = []
    while (frame := decoder.next_frame()) is not None:
        found.append(frame)
    assert decoder.buffered == 0
    return found


def decode_error(data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> str:
    decoder = FrameDecoder(max_payload)
    decoder.receive_data(data)
    with pytest.raises(FrameError) as caught:
        while decoder.next_frame() is not None:
            pass
    return str(caught.value)


# --- encoding and round trips ---------------------------------------------------------


def test_encoded_header_layout() -> None:
    data = encode_frame(CODEC_MSGPACK, (7, 8), b"s3.Write", stream=0x04)
    assert data[0] == 0x15  # version 1, five header words
    assert data[1] == CODEC_MSGPACK
    assert struct.unpack_from("<I", data, 2) == (8,)
    assert struct.unpack_from("<I", data, 6) == (zlib.crc32(data[:6]),)
    assert (data[10], data[11]) == (0x04, 0)
    assert struct.unpack_from("<II", data, 12) == (7, 8)
    assert data[20:] == b"s3.Write"


def test_frame_without_options_has_three_header_words() -> None:
    data = encode_frame(FLAG_CONTROL, (), b"")
    assert len(data) == 12
    assert data[0] == 0x13


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"flags": 256}, "flags"),
        ({"stream": -1}, "stream"),
        ({"options": tuple(range(11))}, "at most 10 options"),
        ({"options": (2**32,)}, "uint32"),
    ],
)
def test_encode_frame_refuses_unrepresentable_fields(
    kwargs: dict[str, object], problem: str
) -> None:
    fields: dict[str, object] = {"flags": 0, "options": (), "payload": b"", "stream": 0}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=problem):
        encode_frame(**fields)  # type: ignore[arg-type]


@given(st.lists(frames, min_size=1, max_size=5), st.data())
def test_frames_survive_arbitrary_splits(sent: list[Frame], data: st.DataObject) -> None:
    wire = b"".join(encode_frame(f.flags, f.options, f.payload, f.stream) for f in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder = FrameDecoder()
    received = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoder.receive_data(wire[start:end])
        while (frame := decoder.next_frame()) is not None:
            received.append(frame)
    assert received == sent
    assert decoder.buffered == 0


@given(frames)
def test_partial_frame_waits_and_is_counted_as_buffered(frame: Frame) -> None:
    wire = encode_frame(frame.flags, frame.options, frame.payload, frame.stream)
    decoder = FrameDecoder()
    decoder.receive_data(wire[:-1])
    assert decoder.next_frame() is None
    assert decoder.buffered == len(wire) - 1
    decoder.receive_data(wire[-1:])
    assert decoder.next_frame() == frame
    assert decoder.buffered == 0


@given(
    seq=uint32,
    method=st.text(max_size=40),
    codec=st.sampled_from([CODEC_JSON, CODEC_MSGPACK, CODEC_RAW]),
    body=st.binary(max_size=200),
)
def test_request_and_response_round_trip(seq: int, method: str, codec: int, body: bytes) -> None:
    for encode in (encode_rpc_request, encode_rpc_response):
        (frame,) = decode_all(encode(seq, method, codec, body))
        assert frame.options == (seq, len(method.encode()))
        request = parse_rpc_request(frame)
        assert (request.seq, request.method, request.codec, request.body) == (
            seq,
            method,
            codec,
            body,
        )


def test_error_answer_carries_flag_codec_and_utf8_message() -> None:
    message = "BUCKET_NOT_FOUND: Bucket not found (bucket: ünïcode)"
    (frame,) = decode_all(encode_rpc_error(9, "s3.Exists", CODEC_MSGPACK, message))
    assert frame.flags == CODEC_MSGPACK | FLAG_ERROR
    assert frame.options == (9, len("s3.Exists"))
    assert frame.payload == b"s3.Exists" + message.encode("utf-8")


def test_error_message_with_surrogate_escapes_is_still_valid_utf8() -> None:
    message = "FILE_NOT_FOUND: File not found (pathname: a\udcff.txt)"
    (frame,) = decode_all(encode_rpc_error(1, "s3.Read", CODEC_MSGPACK, message))
    text = frame.payload[len("s3.Read") :].decode("utf-8")
    assert text == "FILE_NOT_FOUND: File not found (pathname: a\\udcff.txt)"


def test_request_codec_ignores_the_error_and_control_bits() -> None:
    (frame,) = decode_all(encode_frame(CODEC_JSON | FLAG_ERROR | FLAG_CONTROL, (1, 0), b"{}"))
    request = parse_rpc_request(frame)
    assert request.codec == CODEC_JSON
    assert CODEC_MASK & FLAG_ERROR == 0


# --- the hot path and big payloads ----------------------------------------------------


def test_twenty_thousand_small_frames_in_one_stream_decode_in_order() -> None:
    body = b'{"bucket":"uploads","pathname":"a.txt"}'
    wire = b"".join(encode_rpc_request(seq, "s3.Exists", CODEC_JSON, body) for seq in range(20_000))
    decoder = FrameDecoder()
    seqs = []
    for start in range(0, len(wire), 65536):
        decoder.receive_data(wire[start : start + 65536])
        while (frame := decoder.next_frame()) is not None:
            seqs.append(parse_rpc_request(frame).seq)
    assert seqs == list(range(20_000))


def test_large_payload_in_small_reads_arrives_whole_after_the_last_read() -> None:
    # 64 MiB in 64 KiB reads (how fast: benchmarks/, not a wall-clock limit here).
    payload = bytes(range(256)) * (64 * 1024 * 4)
    wire = encode_frame(CODEC_RAW, (1, 0), payload)
    decoder = FrameDecoder()
    received = None
    for start in range(0, len(wire), 65536):
        decoder.receive_data(wire[start : start + 65536])
        frame = decoder.next_frame()
        if frame is not None:
            assert start + 65536 >= len(wire)
            received = frame
    assert received is not None and received.payload == payload


# --- frames that cannot be trusted ----------------------------------------------------


def test_bad_crc_is_refused() -> None:
    good = encode_frame(CODEC_JSON, (1, 2), b"s3{}")
    bad = good[:6] + bytes([good[6] ^ 0xFF]) + good[7:]
    assert "CRC" in decode_error(bad)


def test_corrupted_length_breaks_the_crc() -> None:
    good = encode_frame(CODEC_JSON, (1, 2), b"s3{}")
    bad = good[:2] + bytes([good[2] + 1]) + good[3:]
    assert "CRC" in decode_error(bad)


@pytest.mark.parametrize("version", [0, 2, 15])
def test_wrong_version_is_refused(version: int) -> None:
    message = decode_error(raw_header(version=version))
    assert f"version {version}" in message


@pytest.mark.parametrize("words", [0, 1, 2, 14, 15])
def test_header_length_outside_3_to_13_words_is_refused(words: int) -> None:
    message = decode_error(raw_header(words=words) + bytes(60))
    assert f"header length of {words} words" in message
    assert "at most 10 options" in message


def test_payload_over_the_maximum_is_refused_before_any_payload_arrives() -> None:
    decoder = FrameDecoder(max_payload=1024)
    decoder.receive_data(raw_header(words=5, payload_length=1025))
    with pytest.raises(FrameError, match="1025 bytes exceeds the maximum of 1024"):
        decoder.next_frame()


def test_four_gib_announcement_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_payload=256 * 1024 * 1024)
    decoder.receive_data(raw_header(words=5, payload_length=2**32 - 1))
    assert decoder.buffered == 12
    with pytest.raises(FrameError, match="exceeds the maximum"):
        decoder.next_frame()


def test_payload_at_the_maximum_is_accepted() -> None:
    (frame,) = decode_all(encode_frame(CODEC_RAW, (), b"x" * 1024), max_payload=1024)
    assert frame.payload == b"x" * 1024


def test_incomplete_header_is_not_judged_yet() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(raw_header(crc=0)[:11])
    assert decoder.next_frame() is None


def test_decoder_stays_broken_after_an_error() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(raw_header(crc=0))
    with pytest.raises(FrameError, match="CRC"):
        decoder.next_frame()
    decoder.receive_data(encode_frame(CODEC_JSON, (), b"{}"))
    with pytest.raises(FrameError, match="CRC"):
        decoder.next_frame()


@pytest.mark.parametrize("options", [(), (1,), (1, 2, 3)])
def test_rpc_request_needs_exactly_two_options(options: tuple[int, ...]) -> None:
    frame = Frame(CODEC_JSON, options, b"s3.ListBuckets[]")
    with pytest.raises(FrameError, match=f"needs 2 options .*got {len(options)}"):
        parse_rpc_request(frame)


def test_method_length_beyond_the_payload_is_refused() -> None:
    (frame,) = decode_all(encode_frame(CODEC_JSON, (1, 20), b"s3.Exists{}"))
    with pytest.raises(FrameError, match="method length 20 exceeds the payload of 11 bytes"):
        parse_rpc_request(frame)


def test_a_method_name_that_is_not_utf8_is_kept_and_echoed_byte_for_byte() -> None:
    # Not a framing error: the dispatcher answers it on its seq (INVALID_REQUEST).
    request = parse_rpc_request(Frame(CODEC_JSON, (1, 3), b"s3\xff{}"))
    assert (request.method, request.body) == ("s3\udcff", b"{}")
    (answer,) = decode_all(encode_rpc_error(1, request.method, CODEC_JSON, "x"))
    assert answer.payload[: answer.options[1]] == b"s3\xff"


def test_method_length_equal_to_payload_leaves_an_empty_body() -> None:
    request = parse_rpc_request(Frame(CODEC_GOB, (5, 14), b"s3.ListBuckets"))
    assert (request.method, request.body, request.codec) == ("s3.ListBuckets", b"", CODEC_GOB)


# --- next_call: the server's one-step reading, held to next_frame + parse_rpc_request ---


def _outcomes(wire: bytes, cuts: list[int], step: str, max_payload: int) -> list[object]:
    """What one decoder gives for ``wire`` fed in pieces: each result, then the error."""
    decoder = FrameDecoder(max_payload)
    seen: list[object] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoder.receive_data(wire[start:end])
        while True:
            try:
                if step == "call":
                    got = decoder.next_call()
                elif step == "keeping":
                    got = decoder.next_call_keeping_frame()
                    assert got is None or decoder.last_frame is not None
                else:
                    frame = decoder.next_frame()
                    if frame is None or frame.flags & FLAG_CONTROL:
                        got = frame
                    else:
                        got = parse_rpc_request(frame)
            except FrameError as exc:
                seen.append(("error", str(exc)))
                seen.append(("buffered", decoder.buffered))
                return seen
            if got is None:
                break
            seen.append(got)
            if step == "frame":
                seen.append(("payload", len(frame.payload)))
            else:
                seen.append(("payload", decoder.last_payload))
        seen.append(("buffered", decoder.buffered))
    return seen


request_frames = st.builds(
    lambda seq, method, codec, body: encode_rpc_request(seq, method, codec, body),
    uint32,
    st.text(max_size=20),
    st.sampled_from([CODEC_JSON, CODEC_MSGPACK, CODEC_RAW, 0, CODEC_JSON | FLAG_ERROR]),
    st.binary(max_size=200),
)
any_frames = st.one_of(
    request_frames,
    frames.map(lambda f: encode_frame(f.flags, f.options, f.payload, f.stream)),
)


@given(st.lists(any_frames, min_size=1, max_size=5), st.data())
def test_next_call_gives_what_next_frame_and_parse_rpc_request_give(
    pieces: list[bytes], data: st.DataObject
) -> None:
    """Requests, control frames, frames of any option count, corrupted bytes, any
    split and a small maximum: the same results and the same errors, at the same read."""
    wire = bytearray(b"".join(pieces))
    if wire and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] = data.draw(st.integers(0, 255))  # a corrupt byte anywhere
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    max_payload = data.draw(st.sampled_from([DEFAULT_MAX_PAYLOAD, 64]))
    expected = _outcomes(bytes(wire), cuts, "frame", max_payload)
    assert _outcomes(bytes(wire), cuts, "call", max_payload) == expected
    assert _outcomes(bytes(wire), cuts, "keeping", max_payload) == expected


def test_next_call_splits_a_php_request_and_keeps_what_follows() -> None:
    first = encode_rpc_request(7, "s3.ListBuckets", CODEC_JSON, b"{}")
    second = encode_rpc_request(8, "s3.Exists", CODEC_MSGPACK, b"\x80")
    decoder = FrameDecoder()
    decoder.receive_data(first + second[:15])
    request = decoder.next_call()
    assert (request.seq, request.method, request.codec, request.body) == (
        7, "s3.ListBuckets", CODEC_JSON, b"{}",
    )  # fmt: skip
    assert decoder.next_call() is None and decoder.buffered == 15
    decoder.receive_data(second[15:])
    request = decoder.next_call()
    assert (request.seq, request.method, request.codec, request.body) == (
        8, "s3.Exists", CODEC_MSGPACK, b"\x80",
    )  # fmt: skip
    assert decoder.buffered == 0


def test_a_request_larger_than_one_read_is_split_with_one_copy_of_its_body() -> None:
    """A large call's header arrives before the rest of it (every UploadChunk): once
    whole, its body is copied out once, and no copy of it is kept as a frame too."""
    body = bytes(range(256)) * (16 << 10)  # 4 MiB
    wire = encode_rpc_request(3, "s3.UploadChunk", CODEC_MSGPACK, body)
    decoder = FrameDecoder()
    decoder.receive_data(wire[: 64 << 10])
    assert decoder.next_call() is None
    decoder.receive_data(wire[64 << 10 :])
    tracemalloc.start()
    try:
        request = decoder.next_call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(request, RPCRequest)
    assert (request.seq, request.method, request.body == body) == (3, "s3.UploadChunk", True)
    assert peak < len(body) + (1 << 20)
    assert decoder.last_frame is None and decoder.buffered == 0
