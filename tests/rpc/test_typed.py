"""Binary fields under JSON: the fast base64 path answers exactly what b64decode(validate=True)
answers, bytes or refusal, for any text."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trio_s3rpc.rpc.decoding import _FieldError, _from_base64

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
