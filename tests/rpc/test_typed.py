"""Binary fields under JSON: the fast base64 path answers exactly what b64decode(validate=True)
answers, bytes or refusal, for any text; a large chunk whose base64 the codec decodes itself
is the request (or refusal) decoding it as JSON gives."""

from __future__ import annotations

import base64
import binascii
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trio_s3rpc.errors import RPCError
from trio_s3rpc.goridge.codecs import SPLIT_JSON_FROM, CodecError, decode_args
from trio_s3rpc.goridge.frame import CODEC_JSON
from trio_s3rpc.rpc.decoding import RequestDecoder, _FieldError, _from_base64
from trio_s3rpc.rpc.typed import UploadChunkRequest

BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def library(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def ours(text: str) -> bytes | None:
    try:
        return _from_base64(text)
    except _FieldError:
        return None


@given(st.binary(max_size=300))
def test_valid_base64_decodes_to_the_same_bytes(raw: bytes) -> None:
    text = base64.b64encode(raw).decode()
    assert ours(text) == raw == library(text)


@given(st.text(alphabet=BASE64_ALPHABET + " \n\\-_.é", max_size=40))
@example("=")
@example("QQ=")
@example("QQ===")
@example("Q===")
@example("QQ==QQ==")
@example("QQ==\n")
@example("é")
@example("")
def test_any_text_gets_the_answer_b64decode_gives(text: str) -> None:
    assert ours(text) == library(text)


def test_refusal_names_the_problem() -> None:
    with pytest.raises(_FieldError, match="base64"):
        _from_base64("not base64!")


CHUNK_DECODER = RequestDecoder(UploadChunkRequest)


def typed_outcome(body: bytes, binary_fields: frozenset[str]) -> object:
    """The request an UploadChunk body decodes to, or the error it is refused with."""
    try:
        return CHUNK_DECODER.decode(decode_args(CODEC_JSON, body, binary_fields), True)
    except (CodecError, RPCError) as exc:
        return (type(exc).__name__, str(exc))


@st.composite
def large_json_chunks(draw: st.DrawFn) -> bytes:
    """UploadChunk bodies as PHP's client sends them (content last, from 64 KiB on), and
    near misses: other members, a content before, text that is not plain base64, ends
    that are not the object's."""
    piece = draw(st.binary(min_size=1, max_size=30))
    raw = piece * (SPLIT_JSON_FROM // len(piece)) + draw(st.binary(max_size=2))
    text = base64.b64encode(raw).decode()
    not_plain = ["=", "\\/", "\n", '"', "é", "\x01", "\\u0041", " "]
    mutation = draw(st.just("") | st.sampled_from(not_plain))
    if mutation:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + mutation + text[at:]
    tricky = st.text(alphabet='ab"\\,:{} content', max_size=12)
    head = draw(
        st.dictionaries(
            st.sampled_from(["upload_id", "offset", "content", "x"]),
            st.one_of(tricky, st.integers(0, 9), st.just({"content": "QQ=="})),
            max_size=4,
        )
    )
    opening = json.dumps(head, separators=(",", ":"))[:-1] + ("," if head else "")
    end = draw(st.just('"}') | st.sampled_from(['" }', '"}}', '"', '"}\n']))
    return (opening + '"content":"' + text + end).encode()


@given(large_json_chunks())
@example(b'{"upload_id":"u","content":"' + base64.b64encode(bytes(SPLIT_JSON_FROM)) + b'"}')
@example(b'{"content":"' + base64.b64encode(bytes(SPLIT_JSON_FROM)) + b'"}')
def test_a_large_json_chunk_decodes_as_its_json_and_base64_give(body: bytes) -> None:
    """With the codec told of the byte field (as the dispatcher tells it), the request or
    the refusal is the one decoding the whole text as JSON, then its base64, gives."""
    assert typed_outcome(body, CHUNK_DECODER.binary_fields) == typed_outcome(body, frozenset())


def test_a_large_json_chunk_from_php_skips_the_json_decoder() -> None:
    raw = bytes(range(256)) * (SPLIT_JSON_FROM // 256)
    body = b'{"upload_id":"u","offset":5,"content":"' + base64.b64encode(raw) + b'"}'
    args = decode_args(CODEC_JSON, body, CHUNK_DECODER.binary_fields)
    assert args == {"upload_id": "u", "offset": 5, "content": raw}
