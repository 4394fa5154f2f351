"""SigV4 signing: byte-for-byte what botocore produces, and S3's path and query encoding."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotocoreConfig
from botocore.credentials import Credentials as BotocoreCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_s3rpc.config import Credentials
from trio_s3rpc.s3.signing import (
    EMPTY_PAYLOAD_SHA256,
    SIGNED_PAYLOAD_LIMIT,
    UNSIGNED_PAYLOAD,
    RequestSigner,
    amz_timestamp,
    canonical_query,
    encode_key_path,
    payload_hash,
)

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+token=="
REGION = "eu-west-3"
MOMENT = datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC)
USER_AGENT = "trio-s3rpc/test"


def botocore_signed(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    token: str = "",
    moment: datetime = MOMENT,
    unsigned_payload: bool = False,
) -> dict[str, str]:
    """The headers botocore's S3SigV4Auth adds for this request at ``moment``."""
    credentials = BotocoreCredentials(ACCESS_KEY, SECRET_KEY, token or None)
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    if unsigned_payload:
        request.context["client_config"] = BotocoreConfig(s3={"payload_signing_enabled": False})
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=moment):
        S3SigV4Auth(credentials, "s3", REGION).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def our_signed(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: dict[str, str],
    content_sha256: str,
    *,
    token: str = "",
    moment: datetime = MOMENT,
    signer: RequestSigner | None = None,
) -> dict[str, str]:
    signer = signer or RequestSigner(Credentials(ACCESS_KEY, SECRET_KEY, token), REGION)
    signed = {"host": host, **{name.lower(): value for name, value in headers.items()}}
    signer.sign_headers(
        method, path, query, signed, content_sha256, timestamp=amz_timestamp(moment.timestamp())
    )
    return signed


def assert_same_signature(ours: dict[str, str], theirs: dict[str, str]) -> None:
    for name in ("authorization", "x-amz-date", "x-amz-content-sha256"):
        assert ours[name] == theirs[name], name
    assert ours.get("x-amz-security-token") == theirs.get("x-amz-security-token")


CASES = [
    pytest.param("GET", "/test-bucket/plain.txt", {}, {}, b"", id="get"),
    pytest.param("HEAD", "/b/ünï code/€ x.txt", {}, {"range": "bytes=0-9"}, b"", id="head-unicode"),
    pytest.param(
        "GET",
        "/b",
        {"list-type": "2", "prefix": "dir one/ä+", "continuation-token": "1/abc+def=="},
        {},
        b"",
        id="list-query",
    ),
    pytest.param(
        "PUT",
        "/b/a b/c+d#e?f&g%h.txt",
        {},
        {
            "Content-Type": "text/plain; charset=utf-8",
            "x-amz-meta-note": "  two   spaces  inside ",
            "x-amz-acl": "public-read",
        },
        b"hello world" * 400,
        id="put-small-body",
    ),
    pytest.param(
        "POST",
        "/b/multi/part.bin",
        {"uploads": ""},
        {"Content-Type": "application/octet-stream"},
        b"",
        id="create-multipart",
    ),
    pytest.param(
        "PUT",
        "/b/obj",
        {"partNumber": "3", "uploadId": "2~abc/def+ghi"},
        {"content-md5": "1B2M2Y8AsgTpgAmY7PhCfg=="},
        b"x" * 100,
        id="upload-part",
    ),
]


@pytest.mark.parametrize(("method", "raw_path", "query", "headers", "body"), CASES)
@pytest.mark.parametrize("token", ["", TOKEN])
def test_header_signature_equals_botocore(
    method: str,
    raw_path: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    token: str,
) -> None:
    path = encode_key_path(raw_path)
    query_string = canonical_query(query)
    url = f"http://127.0.0.1:8333{path}" + (f"?{query_string}" if query_string else "")
    headers = {"User-Agent": USER_AGENT, **headers}

    theirs = botocore_signed(method, url, headers, body, token=token)
    ours = our_signed(
        method, "127.0.0.1:8333", path, query_string, headers, payload_hash(body), token=token
    )

    assert_same_signature(ours, theirs)
    assert ("x-amz-security-token" in ours) == bool(token)
    assert "user-agent" not in ours["authorization"]


def test_unsigned_payload_signature_equals_botocore() -> None:
    body = b"z" * (SIGNED_PAYLOAD_LIMIT + 1)
    url = "https://bucket.s3.eu-west-3.amazonaws.com/big/object.bin"
    theirs = botocore_signed("PUT", url, {}, body, unsigned_payload=True)
    ours = our_signed(
        "PUT", "bucket.s3.eu-west-3.amazonaws.com", "/big/object.bin", "", {}, payload_hash(body)
    )
    assert ours["x-amz-content-sha256"] == UNSIGNED_PAYLOAD
    assert_same_signature(ours, theirs)


def test_cached_signing_key_follows_the_date() -> None:
    signer = RequestSigner(Credentials(ACCESS_KEY, SECRET_KEY), REGION)
    url = "http://127.0.0.1:8333/b/k"
    for moment in (MOMENT, datetime(2024, 3, 1, 0, 0, 1, tzinfo=UTC), MOMENT):
        theirs = botocore_signed("GET", url, {}, b"", moment=moment)
        ours = our_signed(
            "GET",
            "127.0.0.1:8333",
            "/b/k",
            "",
            {},
            EMPTY_PAYLOAD_SHA256,
            signer=signer,
            moment=moment,
        )
        assert_same_signature(ours, theirs)


def test_resigning_replaces_the_previous_authorization() -> None:
    signer = RequestSigner(Credentials(ACCESS_KEY, SECRET_KEY), REGION)
    first = our_signed("GET", "h", "/b/k", "", {}, EMPTY_PAYLOAD_SHA256, signer=signer)
    again = dict(first)
    signer.sign_headers(
        "GET", "/b/k", "", again, EMPTY_PAYLOAD_SHA256, timestamp="20240301T000000Z"
    )
    assert again["x-amz-date"] == "20240301T000000Z"
    assert again["authorization"] != first["authorization"]
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in again["authorization"]


@settings(max_examples=60, deadline=None)
@given(
    key=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30),
    prefix=st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    meta=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
def test_any_key_query_and_header_sign_like_botocore(key: str, prefix: str, meta: str) -> None:
    path = "/bucket/" + encode_key_path(key)
    query_string = canonical_query({"prefix": prefix, "max-keys": "10"})
    url = f"http://127.0.0.1:9000{path}?{query_string}"
    headers = {"x-amz-meta-value": meta}
    theirs = botocore_signed("GET", url, headers, b"")
    ours = our_signed("GET", "127.0.0.1:9000", path, query_string, headers, EMPTY_PAYLOAD_SHA256)
    assert_same_signature(ours, theirs)


def test_payload_hash_signs_small_bodies_only() -> None:
    assert payload_hash(b"") == EMPTY_PAYLOAD_SHA256
    small = b"a" * 4096
    assert payload_hash(small) == hashlib.sha256(small).hexdigest()
    limit = b"b" * SIGNED_PAYLOAD_LIMIT
    assert payload_hash(limit) == hashlib.sha256(limit).hexdigest()
    assert payload_hash(limit + b"c") == UNSIGNED_PAYLOAD
    assert payload_hash(limit + b"c", sign_large=True) == hashlib.sha256(limit + b"c").hexdigest()


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("dir/file name.txt", "dir/file%20name.txt"),
        ("a+b", "a%2Bb"),
        ("hash#tag", "hash%23tag"),
        ("what?", "what%3F"),
        ("this&that", "this%26that"),
        ("100%", "100%25"),
        ("ünï/çødé €", "%C3%BCn%C3%AF/%C3%A7%C3%B8d%C3%A9%20%E2%82%AC"),
        ("日本語.txt", "%E6%97%A5%E6%9C%AC%E8%AA%9E.txt"),
        ("keep-_.~/slash/", "keep-_.~/slash/"),
        ("a=b;c,d:e@f$g!h'i(j)k*l", "a%3Db%3Bc%2Cd%3Ae%40f%24g%21h%27i%28j%29k%2Al"),
        ("a..b.txt", "a..b.txt"),
        ("x/./y/..", "x/%2E/y/%2E%2E"),
    ],
)
def test_key_encoding_follows_s3_rules(key: str, encoded: str) -> None:
    assert encode_key_path(key) == encoded


def test_canonical_query_is_sorted_and_encoded() -> None:
    query = {"uploads": "", "prefix": "a b/c", "list-type": "2", "continuation-token": "x+y="}
    assert canonical_query(query) == (
        "continuation-token=x%2By%3D&list-type=2&prefix=a%20b%2Fc&uploads="
    )
    assert canonical_query(None) == ""
    assert canonical_query({}) == ""


def presigned(token: str, expires_in: int) -> str:
    signer = RequestSigner(Credentials(ACCESS_KEY, SECRET_KEY, token), REGION)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=MOMENT):
        return signer.presign("GET", "http://127.0.0.1:8333/b/a%20b%2Bc.txt", expires_in)


@pytest.mark.parametrize("token", ["", TOKEN])
def test_presigned_url_carries_sigv4_query_auth(token: str) -> None:
    url = urlsplit(presigned(token, 600))
    params = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert url.path == "/b/a%20b%2Bc.txt"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Credential"] == f"{ACCESS_KEY}/20240229/{REGION}/s3/aws4_request"
    assert params["X-Amz-Date"] == "20240229T235958Z"
    assert params["X-Amz-Expires"] == "600"
    assert params["X-Amz-SignedHeaders"] == "host"
    assert len(params["X-Amz-Signature"]) == 64
    assert params.get("X-Amz-Security-Token", "") == token
    assert SECRET_KEY not in url.geturl()


@pytest.mark.parametrize("expires_in", [0, -5, 604801])
def test_presign_rejects_expiry_out_of_range(expires_in: int) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        presigned("", expires_in)


def test_presign_accepts_the_bounds() -> None:
    assert "X-Amz-Expires=1&" in presigned("", 1)
    assert "X-Amz-Expires=604800&" in presigned("", 604800)


def test_signer_repr_hides_the_secret() -> None:
    signer = RequestSigner(Credentials(ACCESS_KEY, SECRET_KEY, TOKEN), REGION)
    assert SECRET_KEY not in repr(signer)
    assert TOKEN not in repr(signer)
