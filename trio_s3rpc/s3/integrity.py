"""The checksum headers of a request: Content-MD5 where S3 requires one, CRC32C where asked.

S3 refuses the operations its API model marks "checksum required" without a
Content-MD5 or a flexible checksum header. Under a server's ``checksums:
when_supported``, every body sent whole also carries its CRC32C
(:data:`CRC32C_HEADER`), which the service verifies on arrival and echoes;
the transport checks the echo.
"""

from __future__ import annotations

import base64
import hashlib

from trio_s3rpc import checksums

# Operations the S3 API model marks "checksum required": S3 refuses them without
# Content-MD5 (or a flexible checksum header).
_CHECKSUM_REQUIRED_OPERATIONS = frozenset(
    {
        "DeleteObjects",
        "PutBucketAcl",
        "PutBucketCors",
        "PutBucketEncryption",
        "PutBucketLifecycleConfiguration",
        "PutBucketLogging",
        "PutBucketOwnershipControls",
        "PutBucketPolicy",
        "PutBucketReplication",
        "PutBucketRequestPayment",
        "PutBucketTagging",
        "PutBucketVersioning",
        "PutBucketWebsite",
        "PutObjectAcl",
        "PutObjectLegalHold",
        "PutObjectLockConfiguration",
        "PutObjectRetention",
        "PutObjectTagging",
        "PutPublicAccessBlock",
    }
)
# checksums: when_supported. Every body sent whole carries its CRC32C, which S3
# (and SeaweedFS, MinIO) verify on arrival; a multipart upload declares the
# algorithm when created (S3 refuses part checksums otherwise) as a FULL_OBJECT
# checksum, which needs no part list of checksums at completion, only the same
# type. Never aws-chunked trailers: several S3-compatible services mishandle them.
_BODY_CHECKSUM_OPERATIONS = frozenset({"PutObject", "UploadPart"})
CRC32C_HEADER = "x-amz-checksum-crc32c"
_CHECKSUM_TYPE = "FULL_OBJECT"


def add_checksum_headers(
    headers: dict[str, str], operation: str, body: bytes | object, *, flexible: bool
) -> None:
    """Add to a request's ``headers`` (lower-case names) the checksums it must or may
    carry; ``body`` is bytes when sent whole. A checksum the caller set is kept."""
    if flexible and not any(name.startswith("x-amz-checksum-") for name in headers):
        headers.update(_flexible_headers(operation, body))
    if (
        operation in _CHECKSUM_REQUIRED_OPERATIONS
        and isinstance(body, bytes)
        and "content-md5" not in headers
        and not any(name.startswith("x-amz-checksum-") for name in headers)
    ):
        headers["content-md5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


def _flexible_headers(operation: str, body: bytes | object) -> dict[str, str]:
    """The ``x-amz-checksum-*`` headers of an operation under ``when_supported``."""
    if operation in _BODY_CHECKSUM_OPERATIONS and isinstance(body, bytes):
        return {CRC32C_HEADER: checksums.header_value(checksums.crc32c(body))}
    if operation == "CreateMultipartUpload":
        return {"x-amz-checksum-algorithm": "CRC32C", "x-amz-checksum-type": _CHECKSUM_TYPE}
    if operation == "CompleteMultipartUpload":
        return {"x-amz-checksum-type": _CHECKSUM_TYPE}
    return {}
