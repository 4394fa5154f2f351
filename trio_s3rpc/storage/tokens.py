"""Tokens this server hands to callers: the ``upload_id`` of a chunked upload, and
``ListObjects``' ``next_continuation_token``.

An upload token carries the bucket, the pathname, the service's multipart
upload id and the part size, with an HMAC keyed by the bucket's server
credentials, so any server instance with the same configuration can continue
the upload, and an altered or foreign token is refused as unknown.

A continuation token is the service's own, which may spell out the last key
listed and with it the bucket's configured prefix (SeaweedFS's does): it is
sealed (encrypted, then authenticated, under keys derived from the same
credentials) with the registered bucket's name, so a caller learns nothing of
the key space beyond its own pathnames, and cannot replay it on another
bucket.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from trio_s3rpc.errors import ErrorCode, RPCError

TOKEN_VERSION = "u2"
# Tokens from before the create headers were carried; still understood.
OLD_TOKEN_VERSION = "u1"


@dataclass(slots=True, frozen=True)
class UploadToken:
    bucket: str
    pathname: str
    service_upload_id: str
    part_size: int
    # What the upload was created with (content type, user metadata, ACL,
    # storage class): an instance finishing it elsewhere needs them to store
    # the checksum by a self-copy. None for a u1 token.
    create_headers: dict[str, str] | None = None


def _token_key(secret: str, purpose: bytes = b"upload token") -> bytes:
    return hashlib.sha256(b"trio-s3rpc " + purpose + b"\x00" + secret.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_token(token: UploadToken, secret: str) -> str:
    body = json.dumps(
        [
            token.bucket,
            token.pathname,
            token.service_upload_id,
            token.part_size,
            token.create_headers,
        ],
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(_token_key(secret), body, hashlib.sha256).digest()[:16]
    return f"{TOKEN_VERSION}.{_b64(body)}.{_b64(mac)}"


def decode_token(text: str, secret_for: Any) -> UploadToken:
    """Parse and verify a token; ``secret_for(bucket)`` gives the key's secret or None."""
    unknown = RPCError(
        ErrorCode.UPLOAD_NOT_FOUND,
        "upload_id is not one this deployment issued (or it was altered)",
        f"upload_id: {text[:80]}",
    )
    try:
        version, body_text, mac_text = text.split(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
        fields = json.loads(body)
        if version == OLD_TOKEN_VERSION:
            bucket, pathname, service_upload_id, part_size = fields
            headers = None
        else:
            bucket, pathname, service_upload_id, part_size, headers = fields
    except (ValueError, binascii.Error, TypeError):
        raise unknown from None
    if version not in (TOKEN_VERSION, OLD_TOKEN_VERSION) or not isinstance(bucket, str):
        raise unknown
    if headers is not None and not isinstance(headers, dict):
        raise unknown
    secret = secret_for(bucket)
    if secret is None:
        raise unknown
    expected = hmac.new(_token_key(secret), body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise unknown
    return UploadToken(
        bucket,
        str(pathname),
        str(service_upload_id),
        int(part_size),
        None if headers is None else {str(k): str(v) for k, v in headers.items()},
    )


CONTINUATION_VERSION = "c1"
_CONTINUATION = b"continuation token"
_NONCE_SIZE = 16
_MAC_SIZE = 16


def seal_continuation(bucket: str, service_token: str, secret: str) -> str:
    """The service's continuation token for ``bucket``, encrypted and authenticated."""
    key = _token_key(secret, _CONTINUATION)
    nonce = secrets.token_bytes(_NONCE_SIZE)
    plain = json.dumps([bucket, service_token], separators=(",", ":")).encode()
    sealed = nonce + _xor_keystream(key, nonce, plain)
    mac = hmac.new(key, b"mac\x00" + sealed, hashlib.sha256).digest()[:_MAC_SIZE]
    return f"{CONTINUATION_VERSION}.{_b64(sealed + mac)}"


def open_continuation(text: str, bucket: str, secret: str) -> str:
    """The service's token inside one :func:`seal_continuation` made for ``bucket``."""
    refused = RPCError(
        ErrorCode.INVALID_REQUEST,
        f"continuation_token is not one this server gave for bucket '{bucket}' (or it was "
        "altered); start the listing again without it",
        f"continuation_token: {text[:80]}",
    )
    version, _, body = text.partition(".")
    try:
        data = _unb64(body)
    except (ValueError, binascii.Error):
        raise refused from None
    if version != CONTINUATION_VERSION or len(data) < _NONCE_SIZE + _MAC_SIZE:
        raise refused
    key = _token_key(secret, _CONTINUATION)
    sealed, mac = data[:-_MAC_SIZE], data[-_MAC_SIZE:]
    expected = hmac.new(key, b"mac\x00" + sealed, hashlib.sha256).digest()[:_MAC_SIZE]
    if not hmac.compare_digest(mac, expected):
        raise refused
    nonce, cipher = sealed[:_NONCE_SIZE], sealed[_NONCE_SIZE:]
    try:
        named, service_token = json.loads(_xor_keystream(key, nonce, cipher))
    except (ValueError, TypeError):
        raise refused from None
    if named != bucket or not isinstance(service_token, str):
        raise refused
    return service_token


def _xor_keystream(key: bytes, nonce: bytes, data: bytes) -> bytes:
    """``data`` XOR HMAC-SHA256(key, "enc", nonce, counter) blocks: a PRF in counter mode."""
    blocks = (len(data) + 31) // 32
    stream = b"".join(
        hmac.new(key, b"enc\x00" + nonce + index.to_bytes(4, "big"), hashlib.sha256).digest()
        for index in range(blocks)
    )
    size = len(data)
    mixed = int.from_bytes(data, "big") ^ int.from_bytes(stream[:size], "big")
    return mixed.to_bytes(size, "big")
