"""Argument decoding and result encoding for the JSON, msgpack and raw codecs."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc.goridge.codecs import (
    BINARY_AS_BASE64,
    MAX_NESTING,
    CodecError,
    codec_name,
    decode_args,
    encode_result,
)
from trio_s3rpc.goridge.frame import (
    CODEC_GOB,
    CODEC_JSON,
    CODEC_MSGPACK,
    CODEC_PROTO,
    CODEC_RAW,
    FLAG_ERROR,
)

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
msgpack_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
# Strings as PHP's msgpack sends them: any bytes, kept as surrogate escapes.
php_strings = st.binary(max_size=20).map(lambda raw: raw.decode("utf-8", "surrogateescape"))


def trees(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    values = st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )
    return st.dictionaries(st.text(max_size=8), values, max_size=5)


json_leaves = st.none() | st.booleans() | st.integers() | finite_floats | st.text(max_size=20)
msgpack_leaves = (
    st.none()
    | st.booleans()
    | msgpack_ints
    | finite_floats
    | st.text(max_size=20)
    | php_strings
    | st.binary(max_size=20)
)


def bytes_as_base64(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: bytes_as_base64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [bytes_as_base64(item) for item in value]
    return value


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_codec_names() -> None:
    assert [codec_name(c) for c in (CODEC_JSON, CODEC_MSGPACK, CODEC_RAW)] == [
        "json",
        "msgpack",
        "raw",
    ]
    assert [codec_name(c) for c in (CODEC_GOB, CODEC_PROTO, 0)] == ["gob", "proto", "none"]
    assert codec_name(CODEC_JSON | FLAG_ERROR) == "json"
    assert {CODEC_JSON, CODEC_RAW} == BINARY_AS_BASE64


# --- JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"[]", b"{}", b" [ ] ", b"\n{}\n"])
def test_json_empty_array_or_object_is_no_arguments(body: bytes) -> None:
    assert decode_args(CODEC_JSON, body) == {}


@pytest.mark.parametrize(
    ("body", "got"),
    [(b"[1]", "list"), (b'"x"', "str"), (b"3", "int"), (b"true", "bool")],
)
def test_json_top_level_must_be_an_object(body: bytes, got: str) -> None:
    with pytest.raises(CodecError) as caught:
        decode_args(CODEC_JSON, body)
    assert str(caught.value) == f"arguments must be a JSON object, got {got}"


def test_json_syntax_error_gives_the_position() -> None:
    with pytest.raises(CodecError, match=r"invalid JSON at line 1 column 12 \(char 11\)"):
        decode_args(CODEC_JSON, b'{"bucket": }')


def test_json_invalid_utf8_gives_the_byte() -> None:
    with pytest.raises(CodecError, match=r"not valid UTF-8 .*at byte 12"):
        decode_args(CODEC_JSON, b'{"bucket": "\xff"}')


@pytest.mark.parametrize("body", [b"", b'{"a": NaN}', b'{"a": -Infinity}', b"\xef\xbb\xbf{}"])
def test_json_that_php_never_sends_is_refused(body: bytes) -> None:
    with pytest.raises(CodecError, match="JSON"):
        decode_args(CODEC_JSON, body)


def test_json_in_utf16_is_not_guessed() -> None:
    with pytest.raises(CodecError):
        decode_args(CODEC_JSON, "{}".encode("utf-16-le"))


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 100_000])
def test_json_deep_nesting_is_refused(depth: int) -> None:
    body = b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
    with pytest.raises(CodecError, match="nested"):
        decode_args(CODEC_JSON, body)


def test_json_nesting_at_the_limit_is_accepted() -> None:
    assert decode_args(CODEC_JSON, json.dumps(nested(MAX_NESTING)).encode()) == nested(MAX_NESTING)


def test_json_number_beyond_float_range_is_refused() -> None:
    with pytest.raises(CodecError, match="number 1e400 is out of range"):
        decode_args(CODEC_JSON, b'{"a": 1e400}')


def test_json_huge_integer_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_args(CODEC_JSON, b'{"a": ' + b"9" * 5000 + b"}")


def test_json_result_is_compact_with_bytes_as_base64() -> None:
    result = {"content": b"\x00\xffhi", "items": [{"etag": b"\x01"}], "n": 1}
    encoded = encode_result(CODEC_JSON, result)
    assert json.loads(encoded) == {"content": "AP9oaQ==", "items": [{"etag": "AQ=="}], "n": 1}
    assert b" " not in encoded  # compact separators
    assert encode_result(CODEC_JSON, {"content": b"hi"}) == b'{"content":"aGk="}'


@given(trees(json_leaves | st.binary(max_size=20)))
def test_json_result_round_trips_with_bytes_as_base64(result: dict[str, Any]) -> None:
    assert decode_args(CODEC_JSON, encode_result(CODEC_JSON, result)) == bytes_as_base64(result)


@given(trees(json_leaves))
def test_json_text_is_what_json_dumps_and_loads_give(result: dict[str, Any]) -> None:
    """The prebuilt encoder and decoder behave as the json.dumps/json.loads calls they
    replace (same separators, ASCII escapes, floats, key order)."""
    encoded = encode_result(CODEC_JSON, result)
    assert encoded == json.dumps(result, separators=(",", ":")).encode("ascii")
    text = json.dumps(result, ensure_ascii=False).replace("/", "\\/")  # as PHP sends "/"
    assert decode_args(CODEC_JSON, text.encode()) == json.loads(text)


def test_json_with_a_byte_order_mark_is_refused_as_json_loads_refuses_it() -> None:
    with pytest.raises(CodecError, match="BOM"):
        decode_args(CODEC_JSON, b"\xef\xbb\xbf{}")


# --- raw ------------------------------------------------------------------------------


def test_raw_empty_body_is_no_arguments() -> None:
    assert decode_args(CODEC_RAW, b"") == {}


def test_raw_body_is_json_text() -> None:
    assert decode_args(CODEC_RAW, b'{"bucket":"b"}') == {"bucket": "b"}
    with pytest.raises(CodecError, match="arguments must be a JSON object, got list"):
        decode_args(CODEC_RAW, b"[1,2]")


def test_raw_result_is_json() -> None:
    assert encode_result(CODEC_RAW, {"content": b"\x00"}) == b'{"content":"AA=="}'


# --- msgpack --------------------------------------------------------------------------


def test_msgpack_empty_array_is_no_arguments() -> None:
    assert decode_args(CODEC_MSGPACK, b"\x90") == {}


@pytest.mark.parametrize(("body", "got"), [(b"\x91\x01", "list"), (b"\xc3", "bool")])
def test_msgpack_top_level_must_be_a_map(body: bytes, got: str) -> None:
    with pytest.raises(CodecError, match=f"arguments must be a msgpack map, got {got}"):
        decode_args(CODEC_MSGPACK, body)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "incomplete"),
        (b"\x81\xa1a", "incomplete"),
        (b"\x80\x00\x00", "2 bytes of trailing data"),
        (b"\x80\x00", "1 byte of trailing data"),
        (b"\xc1", "malformed data"),
        (b"\x81\x01\x02", "map keys must be strings, got int"),
        (b"\x81\xc4\x01k\x01", "map keys must be strings, got bytes|^$"),
        (b"\xdf\xff\xff\xff\xff", "exceeds max_map_len"),
        (b"\x81\xa1a\xd4\x05\x00", "extension type 5"),
        (b"\x81\xa1a\xd6\xff\x00\x00\x00\x01", "Timestamp"),
        (b"\x81\xa1a" + b"\x91" * 2000 + b"\xc0", "nested"),
    ],
)
@pytest.mark.parametrize("binary_fields", [frozenset(), frozenset({"content"})])
def test_msgpack_malformed_input_is_a_codec_error(
    body: bytes, problem: str, binary_fields: frozenset[str]
) -> None:
    if problem.endswith("|^$") and binary_fields:
        # Taking strings raw, a bin key cannot be told from a str one: it is a name.
        assert decode_args(CODEC_MSGPACK, body, binary_fields) == {"k": 1}
        return
    with pytest.raises(CodecError, match=problem):
        decode_args(CODEC_MSGPACK, body, binary_fields)


def test_msgpack_nesting_over_the_limit_is_refused() -> None:
    with pytest.raises(CodecError, match=f"nested deeper than {MAX_NESTING}"):
        decode_args(CODEC_MSGPACK, msgpack.packb(nested(MAX_NESTING + 1)))


def test_msgpack_result_packs_bytes_as_bin() -> None:
    encoded = encode_result(CODEC_MSGPACK, {"c": b"\x00\xff"})
    assert encoded == b"\x81\xa1c\xc4\x02\x00\xff"


@given(trees(msgpack_leaves))
def test_msgpack_result_round_trips_exactly(result: dict[str, Any]) -> None:
    assert decode_args(CODEC_MSGPACK, encode_result(CODEC_MSGPACK, result)) == result


@given(st.binary(max_size=40))
def test_msgpack_str_holding_any_bytes_is_recovered(raw: bytes) -> None:
    body = msgpack.packb({"content": raw}, use_bin_type=False)  # as PHP packs strings
    content = decode_args(CODEC_MSGPACK, body)["content"]
    assert content.encode("utf-8", "surrogateescape") == raw


@given(st.binary(max_size=64), st.booleans())
def test_msgpack_byte_fields_are_the_bytes_sent_as_str_or_bin(raw: bytes, as_bin: bool) -> None:
    body = msgpack.packb({"content": raw, "pathname": "a.bin"}, use_bin_type=as_bin)
    args = decode_args(CODEC_MSGPACK, body, frozenset({"content"}))
    assert type(args["content"]) is bytes
    assert args["content"] == raw
    assert args["pathname"] == "a.bin"


@given(trees(st.none() | st.booleans() | msgpack_ints | finite_floats | php_strings))
def test_msgpack_fields_other_than_byte_fields_decode_as_before(tree: dict[str, Any]) -> None:
    """PHP packs every string as str: naming byte fields changes only those fields."""
    body = msgpack.packb(tree, use_bin_type=False, unicode_errors="surrogateescape")
    plain = decode_args(CODEC_MSGPACK, body)
    with_bytes = decode_args(CODEC_MSGPACK, body, frozenset({"content"}))
    assert {k: v for k, v in with_bytes.items() if k != "content"} == {
        k: v for k, v in plain.items() if k != "content"
    }
    if isinstance(plain.get("content"), str):
        assert with_bytes["content"] == plain["content"].encode("utf-8", "surrogateescape")


def test_msgpack_nested_byte_field_names_stay_text() -> None:
    body = msgpack.packb({"config": {"content": "x"}, "list": ["\u00e9"]}, use_bin_type=False)
    assert decode_args(CODEC_MSGPACK, body, frozenset({"content"})) == {
        "config": {"content": "x"},
        "list": ["\u00e9"],
    }


# --- codecs we do not speak, and arbitrary input ----------------------------------------


@pytest.mark.parametrize(
    ("codec", "message"),
    [
        (CODEC_GOB, "the gob codec is not supported; use JSON or msgpack"),
        (CODEC_PROTO, "the proto codec is not supported; use JSON or msgpack"),
        (0, "the frame names no codec; use JSON or msgpack"),
        (CODEC_JSON | CODEC_MSGPACK, "several codec flags (json+msgpack)"),
    ],
)
def test_unsupported_codecs_are_named(codec: int, message: str) -> None:
    for call in (lambda: decode_args(codec, b"{}"), lambda: encode_result(codec, {})):
        with pytest.raises(CodecError) as caught:
            call()
        assert message in str(caught.value)


@given(st.integers(min_value=0, max_value=255), st.binary(max_size=200))
def test_decode_args_raises_only_codec_error(codec: int, body: bytes) -> None:
    try:
        arguments = decode_args(codec, body)
    except CodecError as exc:
        assert str(exc)
    else:
        assert isinstance(arguments, dict)
        assert all(isinstance(key, str) for key in arguments)


@pytest.mark.parametrize(("codec", "body"), [(CODEC_JSON, b"null"), (CODEC_MSGPACK, b"\xc0")])
def test_null_arguments_mean_no_arguments(codec: int, body: bytes) -> None:
    # PHP: $rpc->call('s3.ListBuckets', null)
    assert decode_args(codec, body) == {}
