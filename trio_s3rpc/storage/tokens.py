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


def _token_key(secret: str) -> bytes:
    return hashlib.sha256(b"trio-s3rpc upload token\x00" + secret.encode()).digest()


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
