"""Chunked-upload tokens: what one carries comes back, and nothing else passes (no network)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.storage.tokens import UploadToken, decode_token, encode_token

TOKEN = UploadToken("uploads", "dir/ü export.csv", "service-id~1", 5 * 1024 * 1024)
SECRETS = {"uploads": "secret-a", "other": "secret-b"}


def assert_unknown(text: str) -> None:
    with pytest.raises(RPCError) as error:
        decode_token(text, SECRETS.get)
    assert error.value.code is ErrorCode.UPLOAD_NOT_FOUND


@given(
    bucket=st.sampled_from(sorted(SECRETS)),
    pathname=st.text(min_size=1, max_size=200),
    service_upload_id=st.text(max_size=200),
    part_size=st.integers(min_value=1, max_value=5 * 1024**3),
    create_headers=st.none() | st.dictionaries(st.text(max_size=20), st.text(max_size=40)),
)
def test_a_token_decodes_to_what_it_was_made_of(
    bucket: str,
    pathname: str,
    service_upload_id: str,
    part_size: int,
    create_headers: dict[str, str] | None,
) -> None:
    token = UploadToken(bucket, pathname, service_upload_id, part_size, create_headers)
    text = encode_token(token, SECRETS[bucket])
    assert decode_token(text, SECRETS.get) == token


def test_a_token_is_url_safe_text_with_a_version() -> None:
    text = encode_token(TOKEN, SECRETS["uploads"])
    assert text.startswith("u2.")
    assert text.isascii() and not set(text) & set("+/= ")


def test_an_altered_token_is_unknown() -> None:
    version, body, mac = encode_token(TOKEN, SECRETS["uploads"]).split(".")
    flipped = "A" if body[5] != "A" else "B"
    assert_unknown(f"{version}.{body[:5]}{flipped}{body[6:]}.{mac}")
    assert_unknown(f"{version}.{body}.{'A' * len(mac)}")
    assert_unknown(f"u1.{body}.{mac}")
    assert_unknown(f"u3.{body}.{mac}")


def test_a_token_from_before_create_headers_still_decodes() -> None:
    import hashlib
    import hmac
    import json

    from trio_s3rpc.storage.tokens import _b64, _token_key

    body = json.dumps(["uploads", "a.bin", "id-1", 5 * 1024 * 1024]).encode()
    mac = hmac.new(_token_key(SECRETS["uploads"]), body, hashlib.sha256).digest()[:16]
    decoded = decode_token(f"u1.{_b64(body)}.{_b64(mac)}", SECRETS.get)
    assert decoded == UploadToken("uploads", "a.bin", "id-1", 5 * 1024 * 1024, None)


def test_a_token_signed_with_another_secret_is_unknown() -> None:
    assert_unknown(encode_token(TOKEN, "not the server's secret"))


def test_a_token_for_a_bucket_not_registered_here_is_unknown() -> None:
    assert_unknown(encode_token(UploadToken("gone", "a", "id", 1), "secret-a"))


@pytest.mark.parametrize("text", ["", "u1", "u1..", "u1.a.b.c", "u1.!!!.@@@", "x" * 500])
def test_garbage_is_unknown(text: str) -> None:
    assert_unknown(text)
