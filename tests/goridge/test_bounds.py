"""Counting an argument's values before decoding it: refused past the limits, exact below."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc.goridge import bounds
from trio_s3rpc.goridge.codecs import CodecError, encode_result, encode_result_in_pieces
from trio_s3rpc.goridge.frame import CODEC_JSON, CODEC_MSGPACK


def _values(tree: Any) -> tuple[int, int]:
    """(values, map entries) of a decoded tree, counted as check_counts does."""
    if isinstance(tree, dict):
        values, entries = 1, len(tree)
        for item in tree.values():
            inner = _values(item)
            values, entries = values + 1 + inner[0], entries + inner[1]
        return values, entries
    if isinstance(tree, list):
        values, entries = 1, 0
        for item in tree:
            inner = _values(item)
            values, entries = values + inner[0], entries + inner[1]
        return values, entries
    return 1, 0


def _msgpack(tree: Any) -> bytes:
    return msgpack.packb(tree, use_bin_type=True)


def test_a_million_metadata_entries_are_refused_before_decoding() -> None:
    body = _msgpack(
        {"pathname": "a", "content": b"x", "config": {f"k{i}": "v" for i in range(10**6)}}
    )
    with pytest.raises(CodecError, match="more than 100000 map entries"):
        bounds.check_counts(CODEC_MSGPACK, body)
    text = json.dumps({"config": {f"k{i}": "v" for i in range(200_000)}}).encode()
    with pytest.raises(CodecError, match="map entries"):
        bounds.check_counts(CODEC_JSON, text)


def test_large_content_and_many_pathnames_pass() -> None:
    content = b"\x00" * (40 * 1024 * 1024)
    bounds.check_counts(CODEC_MSGPACK, _msgpack({"pathname": "a", "content": content}))
    pathnames = [f"dir/{index}.txt" for index in range(300_000)]
    bounds.check_counts(CODEC_MSGPACK, _msgpack({"pathnames": pathnames}))
    bounds.check_counts(CODEC_JSON, json.dumps({"pathnames": pathnames}).encode())
    # Colons and commas inside strings are not structure.
    bounds.check_counts(CODEC_JSON, json.dumps({"pathnames": ["a:b,c"] * 150_000}).encode())


def test_too_many_list_items_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounds, "MAX_VALUES", 1000)
    with pytest.raises(CodecError, match="more than 1000 values"):
        bounds.check_counts(CODEC_MSGPACK, _msgpack({"pathnames": ["a"] * 1001}))
    with pytest.raises(CodecError, match="more than 1000 values"):
        bounds.check_counts(CODEC_JSON, json.dumps({"pathnames": ["a"] * 1001}).encode())


trees = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(),
              st.text(max_size=20), st.binary(max_size=300)),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=5), children, max_size=6),
    max_leaves=40,
)  # fmt: skip


@given(tree=st.dictionaries(st.text(max_size=5), trees, max_size=6), limit=st.integers(1, 60))
def test_msgpack_counts_are_exact(tree: dict[str, Any], limit: int) -> None:
    values, entries = _values(tree)
    saved = bounds.MAX_VALUES, bounds.MAX_MAP_ENTRIES
    bounds.MAX_VALUES, bounds.MAX_MAP_ENTRIES = limit, limit
    try:
        bounds._check_msgpack(_msgpack(tree))
        assert values <= limit and entries <= limit
    except CodecError:
        assert values > limit or entries > limit
    finally:
        bounds.MAX_VALUES, bounds.MAX_MAP_ENTRIES = saved


@given(body=st.binary(max_size=200))
def test_malformed_msgpack_is_left_to_the_decoder(body: bytes) -> None:
    try:
        bounds._check_msgpack(body)
    except CodecError as exc:
        assert "more than" in str(exc)


answers = st.dictionaries(
    st.text(max_size=8),
    trees | st.lists(st.dictionaries(st.text(max_size=5), trees, max_size=3), max_size=5),
    max_size=5,
)


@given(answer=answers)
def test_an_answer_encoded_in_pieces_is_the_same_bytes(answer: dict[str, Any]) -> None:
    for codec in (CODEC_MSGPACK, CODEC_JSON):
        try:
            whole = encode_result(codec, answer)
        except (TypeError, ValueError):  # e.g. NaN or bytes keys JSON cannot carry
            continue
        assert encode_result_in_pieces(codec, answer) == whole


def test_a_write_of_large_content_is_not_many_values_and_300k_pathnames_are() -> None:
    content = b"\x00" * (512 * 1024)
    write = {"pathname": "a.bin", "content": content, "config": {"a": "b"}}
    assert not bounds.holds_many(CODEC_MSGPACK, _msgpack(write), 2000)
    as_json = json.dumps({"pathname": "a.bin", "content": "QUJD" * 100_000}).encode()
    assert not bounds.holds_many(CODEC_JSON, as_json, 2000)
    pathnames = {"pathnames": [f"p/{index}" for index in range(3000)]}
    assert bounds.holds_many(CODEC_MSGPACK, _msgpack(pathnames), 2000)
    assert bounds.holds_many(CODEC_JSON, json.dumps(pathnames).encode(), 2000)
