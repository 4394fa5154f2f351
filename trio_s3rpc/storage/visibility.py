"""Object visibility: the bucket's ACL mode (probed once), canned ACL headers, reading and
setting an object's ACL.

A bucket's ``visibility_mode`` is ``acl`` (per-object ACLs), ``none`` (the
service has no ACLs: every object has the bucket's visibility) or ``auto``,
resolved at first use by writing a public-read marker and reading its ACL
back.
"""

from __future__ import annotations

import logging

from trio_s3rpc.config import VISIBILITIES
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.storage.buckets import Bucket, ObjectRef, StorageError

log = logging.getLogger("trio_s3rpc.storage")

PROBE_PATHNAME = ".trio-s3rpc-acl-probe"
_NO_ACL_CODES = ("NotImplemented", "AccessControlListNotSupported")


async def mode(bucket: Bucket) -> str:
    """The bucket's visibility mode, probing an ``auto`` bucket once."""
    if bucket.visibility_mode == "auto":
        async with bucket.probe_lock:
            if bucket.visibility_mode == "auto":
                bucket.visibility_mode = await _probe_acl_support(bucket)
    return bucket.visibility_mode


async def _probe_acl_support(bucket: Bucket) -> str:
    """Write a public-read marker, read its ACL back, delete it: does the grant stick?"""
    key = bucket.key(PROBE_PATHNAME)
    found = "none"
    try:
        await bucket.request(
            "PutObject", "PUT", key, headers={"x-amz-acl": "public-read"}, body=b""
        )
        try:
            response = await bucket.request("GetObjectAcl", "GET", key, query={"acl": ""})
            found = "acl" if s3xml.parse_acl_is_public(response.content) else "none"
        finally:
            await bucket.request("DeleteObject", "DELETE", key, ok_statuses=(200, 204, 404))
    except StorageError as exc:
        if exc.status not in (400, 403, 501) and exc.service_code not in _NO_ACL_CODES:
            raise
    log.info("event=visibility_probe bucket=%s mode=%s", bucket.name, found)
    return found


async def acl_headers(bucket: Bucket, visibility: str) -> dict[str, str]:
    """The canned ACL a new object of ``bucket`` gets for ``visibility`` ("" = the bucket's)."""
    wanted = visibility or bucket.config.visibility
    if wanted not in VISIBILITIES:
        raise RPCError(
            ErrorCode.INVALID_VISIBILITY,
            f"visibility must be 'public' or 'private', got {visibility!r}",
        )
    if await mode(bucket) == "none":
        if wanted != bucket.config.visibility:
            raise RPCError(
                ErrorCode.INVALID_VISIBILITY,
                f"bucket '{bucket.name}' cannot set per-object visibility: its storage "
                "service does not support object ACLs (visibility_mode: none), so every "
                f"object has the bucket's visibility '{bucket.config.visibility}'",
            )
        return {}
    return {"x-amz-acl": "public-read" if wanted == "public" else "private"}


async def read(ref: ObjectRef) -> str:
    """``public`` or ``private``: the object's ACL, or the bucket's visibility without ACLs."""
    bucket = ref.bucket
    if await mode(bucket) == "none":
        return bucket.config.visibility
    try:
        response = await bucket.request("GetObjectAcl", "GET", ref.key, query={"acl": ""})
    except StorageError as exc:
        if exc.status == 501 or exc.service_code in _NO_ACL_CODES:
            return bucket.config.visibility
        raise
    return "public" if s3xml.parse_acl_is_public(response.content) else "private"


async def update(ref: ObjectRef, visibility: str) -> None:
    if not visibility:
        raise RPCError(ErrorCode.INVALID_VISIBILITY, "visibility is empty")
    headers = await acl_headers(ref.bucket, visibility)
    if not headers:
        return  # a "none" bucket asked for its own visibility: nothing to change
    await ref.bucket.request("PutObjectAcl", "PUT", ref.key, query={"acl": ""}, headers=headers)
