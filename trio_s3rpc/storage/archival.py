"""Archival settings of new objects: storage class and server-side encryption.

A write's ``storage_class``, ``sse`` and ``sse_kms_key_id`` fields override
the bucket's defaults of the same names; the result becomes the S3 headers
of PutObject, CreateMultipartUpload or CopyObject. Values are checked with
the same rules as the config (:func:`trio_s3rpc.config.archival_problem`),
before any request is sent. HeadObject answers them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trio_s3rpc.config import BucketConfig, archival_problem
from trio_s3rpc.errors import ErrorCode, RPCError

STORAGE_CLASS_HEADER = "x-amz-storage-class"
SSE_HEADER = "x-amz-server-side-encryption"
SSE_KMS_KEY_HEADER = "x-amz-server-side-encryption-aws-kms-key-id"


@dataclass(slots=True, frozen=True)
class Archival:
    """What a request asks for ("" = the bucket's default)."""

    storage_class: str = ""
    sse: str = ""
    sse_kms_key_id: str = ""


def archival_headers(bucket: BucketConfig, asked: Archival) -> dict[str, str]:
    """The S3 headers for a new object of ``bucket``; INVALID_REQUEST names a bad field."""
    storage_class = asked.storage_class or bucket.storage_class
    sse = asked.sse or bucket.sse
    # A key id belongs to the encryption it came with.
    key_id = asked.sse_kms_key_id or (bucket.sse_kms_key_id if sse == bucket.sse else "")
    problem = archival_problem(storage_class, sse, key_id)
    if problem is not None:
        field_name, why = problem
        raise RPCError(ErrorCode.INVALID_REQUEST, f"field '{field_name}' {why}")
    headers: dict[str, str] = {}
    if storage_class:
        headers[STORAGE_CLASS_HEADER] = storage_class
    if sse:
        headers[SSE_HEADER] = sse
    if key_id:
        headers[SSE_KMS_KEY_HEADER] = key_id
    return headers


def archival_of(headers: Mapping[str, str]) -> Archival:
    """What an object's HeadObject answer says (S3 omits the class of STANDARD objects)."""
    return Archival(
        storage_class=headers.get(STORAGE_CLASS_HEADER, "") or "STANDARD",
        sse=headers.get(SSE_HEADER, ""),
        sse_kms_key_id=headers.get(SSE_KMS_KEY_HEADER, ""),
    )
