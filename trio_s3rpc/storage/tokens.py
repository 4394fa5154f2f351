"""The ``upload_id`` of a chunked upload: a signed, self-describing token.

It carries the bucket, the pathname, the service's multipart upload id and
the part size, with an HMAC keyed by the bucket's server credentials, so any
server instance with the same configuration can continue the upload, and an
altered or foreign token is refused as unknown.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from trio_s3rpc.errors import ErrorCode, RPCError

TOKEN_VERSION = "u1"


@dataclass(slots=True, frozen=True)
class UploadToken:
    bucket: str
    pathname: str
    service_upload_id: str
    part_size: int


def _token_key(secret: str) -> bytes:
    return hashlib.sha256(b"trio-s3rpc upload token\x00" + secret.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_token(token: UploadToken, secret: str) -> str:
    body = json.dumps(
        [token.bucket, token.pathname, token.service_upload_id, token.part_size],
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
        bucket, pathname, service_upload_id, part_size = json.loads(body)
    except (ValueError, binascii.Error, TypeError):
        raise unknown from None
    if version != TOKEN_VERSION or not isinstance(bucket, str):
        raise unknown
    secret = secret_for(bucket)
    if secret is None:
        raise unknown
    expected = hmac.new(_token_key(secret), body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise unknown
    return UploadToken(bucket, str(pathname), str(service_upload_id), int(part_size))
