"""Object visibility: the bucket's ACL mode (probed until decided), canned ACL headers,
reading and setting an object's ACL.

A bucket's ``visibility_mode`` is ``acl`` (per-object ACLs), ``none`` (the
service has no ACLs: every object has the bucket's visibility) or ``auto``,
resolved by writing a public-read marker and reading its ACL back. Only an
answer about ACLs decides: a grant that comes back (``acl``), one that does
not, or one of the refusals that services keeping no ACLs give (``none``,
:data:`NO_ACL_CODES`). Any other failure (a wrong secret, clock skew, an
expired token, a missing permission, a service in trouble) says nothing about
ACLs: the probe fails, the bucket stays ``auto``, the call that needed the
decision fails naming why, and the next one probes again. A wrong guess would
hold for the process's life: ``SetVisibility`` a silent no-op, ``GetMetadata``
reporting the bucket's default whatever the object's real ACL.
"""

from __future__ import annotations

import logging

from trio_s3rpc.config import VISIBILITIES
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.storage.buckets import Bucket, ObjectRef, StorageError

log = logging.getLogger("trio_s3rpc.storage")

PROBE_PATHNAME = ".trio-s3rpc-acl-probe"
# The refusals that mean "this service keeps no object ACLs", and who gives them.
NO_ACL_CODES = {
    # AWS S3, a bucket whose Object Ownership is "bucket owner enforced" (ACLs
    # disabled, the default for buckets created since April 2023): any ACL but
    # bucket-owner-full-control is refused with HTTP 400 (AWS S3 User Guide,
    # "Controlling ownership of objects and disabling ACLs for your bucket").
    "AccessControlListNotSupported": "AWS S3 with ACLs disabled",
    # MinIO (PutObjectAcl with any canned ACL but private; the README's own
    # observation for GetObjectAcl) and Cloudflare R2 (ACL headers and
    # operations are "not implemented" in its S3 API compatibility table):
    # HTTP 501.
    "NotImplemented": "MinIO, Cloudflare R2",
}
# HTTP 501 Not Implemented, whatever its code: the operation does not exist there.
NO_ACL_STATUS = 501
# SeaweedFS (4.48, seen by the suite's probe) accepts a PutObject's canned ACL
# and does not keep it: GetObjectAcl answers the owner's grant alone. That is
# an answer about ACLs too (the grant did not come back), read as "none".


def means_no_acls(exc: StorageError) -> bool:
    """True for the refusals of services that keep no object ACLs (:data:`NO_ACL_CODES`)."""
    return exc.status == NO_ACL_STATUS or exc.service_code in NO_ACL_CODES


async def mode(bucket: Bucket) -> str:
    """The bucket's visibility mode, probing an ``auto`` bucket until it has an answer.

    Callers that waited for a probe that failed get its error rather than
    each sending a probe of their own.
    """
    if bucket.visibility_mode == "auto":
        attempts_seen = bucket.probe_attempts
        async with bucket.probe_lock:
            if bucket.visibility_mode == "auto":
                failed = bucket.probe_error
                if bucket.probe_attempts != attempts_seen and failed is not None:
                    raise failed
                bucket.probe_attempts += 1
                try:
                    bucket.visibility_mode = await _probe_acl_support(bucket)
                except StorageError as exc:
                    bucket.probe_error = _undecided(bucket, exc)
                    raise bucket.probe_error from None
                bucket.probe_error = None
    return bucket.visibility_mode


def _undecided(bucket: Bucket, exc: StorageError) -> RPCError:
    log.warning(
        "event=visibility_probe_failed bucket=%s status=%d code=%s",
        bucket.name,
        exc.status,
        exc.service_code,
    )
    return RPCError(
        exc.code,
        f"bucket '{bucket.name}': visibility_mode auto is not decided: the ACL probe "
        f"failed: {exc.message}",
        f"{exc.details}; only an answer about ACLs decides, so it is retried at the next "
        "call that needs it; set visibility_mode to acl or none to skip the probe",
    )


async def _probe_acl_support(bucket: Bucket) -> str:
    """Write a public-read marker, read its ACL back, delete it: does the grant stick?"""
    key = bucket.key(PROBE_PATHNAME)
    try:
        await bucket.request(
            "PutObject", "PUT", key, headers={"x-amz-acl": "public-read"}, body=b""
        )
    except StorageError as exc:
        if not means_no_acls(exc):
            raise
        found = "none"
    else:
        try:
            response = await bucket.request("GetObjectAcl", "GET", key, query={"acl": ""})
        except StorageError as exc:
            if not means_no_acls(exc):
                raise
            found = "none"
        else:
            found = "acl" if s3xml.parse_acl_is_public(response.content) else "none"
        finally:
            await _remove_marker(bucket, key)
    log.info("event=visibility_probe bucket=%s mode=%s", bucket.name, found)
    return found


async def _remove_marker(bucket: Bucket, key: str) -> None:
    """Delete the probe's marker; a failure is logged, the answer about ACLs stands."""
    try:
        await bucket.request("DeleteObject", "DELETE", key, ok_statuses=(200, 204, 404))
    except StorageError as exc:
        log.warning(
            "event=visibility_probe_cleanup_failed bucket=%s key=%s error=%r",
            bucket.name,
            key,
            exc.message,
        )


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
        if means_no_acls(exc):
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
