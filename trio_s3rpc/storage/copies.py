"""Copy and Move, multipart copies, and storing a checksum on an object a streamed
upload just completed.

Between two buckets of one server a copy is made on the service and the
bytes never pass through this server: one CopyObject, or, above the
destination's ``multipart_copy_threshold`` (CopyObject stops at 5 GiB),
UploadPartCopy in parts planned within S3's limits. Between servers, or when
the service answers CopyObject with ``NotImplemented``, the copy is streamed
(``streamed.py``). A Move deletes its source only once the destination is
complete and verified; any failure before that leaves the source as it was,
and the error says what state each side is in.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

from trio_s3rpc import checksums
from trio_s3rpc.errors import ErrorCode, PartialMoveError, RPCError
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.s3.multipart import copy_part_sender, upload_multipart
from trio_s3rpc.s3.parts import plan_parts
from trio_s3rpc.storage import objects, streamed, visibility
from trio_s3rpc.storage.archival import Archival, archival_headers
from trio_s3rpc.storage.buckets import Bucket, ObjectRef, StorageError
from trio_s3rpc.storage.records import NewObject, ObjectInfo, http_date

log = logging.getLogger("trio_s3rpc.storage")


def _copy_source(bucket: Bucket, key: str) -> str:
    return "/" + urllib.parse.quote(f"{bucket.config.bucket}/{key}", safe="/")


def same_service(source: ObjectRef, dest: ObjectRef) -> bool:
    """Whether CopyObject can copy between the two: the same ``s3.servers`` entry."""
    return source.bucket.transport is dest.bucket.transport


def _same_object(source: ObjectRef, dest: ObjectRef) -> bool:
    return (
        same_service(source, dest)
        and source.bucket.config.bucket == dest.bucket.config.bucket
        and source.key == dest.key
    )


async def copy(source: ObjectRef, dest: ObjectRef, new: NewObject) -> ObjectInfo:
    """Copy ``source`` to ``dest``, created as ``new`` asks (see :class:`NewObject`:
    the source's metadata and headers are carried over where ``new`` gives none).

    Onto itself, a copy that asks for nothing changes nothing (S3 would refuse
    it); with only a visibility it sets that visibility; with metadata,
    headers or archival settings it rewrites them on the service.
    """
    # Checked before any request: a bad storage class, encryption or header sends nothing.
    archival_headers(dest.bucket.config, new.archival)
    new.headers.http()
    rewrites = bool(new.metadata or new.headers or new.archival != Archival())
    if _same_object(source, dest) and not rewrites:
        info = await objects.head(source)
        if new.visibility:
            await visibility.update(dest, new.visibility)
        return info
    if not same_service(source, dest):
        return await _copy_streamed(source, dest, new)
    try:
        return await _copy_on_service(source, dest, new)
    except StorageError as exc:
        if exc.status != 501 and exc.service_code != "NotImplemented":
            raise
    log.info(
        "event=copy_streamed reason=copy_not_implemented bucket=%s pathname=%r",
        dest.bucket.name,
        dest.pathname,
    )
    return await _copy_streamed(source, dest, new)


async def _copy_streamed(source: ObjectRef, dest: ObjectRef, new: NewObject) -> ObjectInfo:
    result = await streamed.copy(source, dest, new)
    if result.checksum_stored:
        return result.info
    # A source written by something else: store the checksum computed on the way.
    return await attach_checksum(dest, result.headers, result.info)


async def _copy_on_service(source: ObjectRef, dest: ObjectRef, new: NewObject) -> ObjectInfo:
    info = await objects.head(source)
    copy_source = _copy_source(source.bucket, source.key)
    if info.size > dest.bucket.config.multipart_copy_threshold:
        return await _copy_multipart(
            dest, info.size, await objects.copy_headers(dest, info, new), copy_source
        )
    if new.metadata or new.headers:
        # What REPLACE would drop and the call did not replace is carried over.
        headers = await objects.copy_headers(dest, info, new)
        headers["x-amz-metadata-directive"] = "REPLACE"
    else:
        headers = await objects.settings_headers(dest, new)
        headers["x-amz-metadata-directive"] = "COPY"
    headers["x-amz-copy-source"] = copy_source
    if info.checksum and info.etag:
        # The checksum answered (and for REPLACE, stored) is the one read by
        # HEAD: the copy must be of that very object.
        headers["x-amz-copy-source-if-match"] = info.etag
    etag, last_modified, date = await _copy_object(dest, headers)
    return ObjectInfo(
        size=info.size,
        last_modified=last_modified or http_date(date),
        mime_type=info.mime_type,
        etag=etag,
        checksum=info.checksum,
    )


async def _copy_object(dest: ObjectRef, headers: Mapping[str, str]) -> tuple[str, int, str]:
    """One CopyObject: the new ETag, its LastModified and the answer's Date header."""
    bucket = dest.bucket
    response = await bucket.request("CopyObject", "PUT", dest.key, headers=headers)
    with bucket.errors(dest.key):
        etag, last_modified = s3xml.parse_copy_result(response.content, "CopyObject")
    return etag, last_modified, response.headers.get("date", "")


async def _copy_multipart(
    dest: ObjectRef, size: int, headers: Mapping[str, str], copy_source: str
) -> ObjectInfo:
    """CopyObject stops at 5 GiB: copy larger objects part by part on the service, into
    an upload created with ``headers``."""
    bucket = dest.bucket
    with bucket.errors(dest.key):
        plan = plan_parts(size, bucket.config.part_size)

        async def spans() -> AsyncIterator[tuple[int, int]]:
            for _, start, length in plan.spans():
                yield start, start + length

        target = bucket.multipart(dest.key, headers)
        done = await upload_multipart(
            target,
            spans(),
            concurrency=bucket.config.concurrency,
            send_part=copy_part_sender(target, copy_source),
        )
    return ObjectInfo.uploaded(done, headers)


async def move(source: ObjectRef, dest: ObjectRef, new: NewObject) -> ObjectInfo:
    """Copy, check what landed, and only then delete the source.

    A failure before the delete leaves the source untouched (and the copy
    has left nothing at the destination); one of the delete leaves both.
    Either way the error says so. Cancellation and timeouts are not errors
    here: they propagate, and the copy's upload aborts itself on the way.
    """
    if _same_object(source, dest):
        # Onto itself: a Copy onto itself, never the delete.
        return await copy(source, dest, new)
    try:
        info = await copy(source, dest, new)
    except RPCError as exc:
        raise _source_untouched(exc) from None
    await _verify_landed(dest, info)
    try:
        await objects.delete(source)
    except RPCError as exc:
        raise PartialMoveError(
            exc.code,
            f"the copy to {dest.bucket.name}/{dest.pathname} is complete and verified, but the "
            f"source could not be deleted: {exc.message}; both exist",
            exc.details,
        ) from None
    return info


# Refusals made before anything was sent: the error speaks for itself.
_NOTHING_STARTED = frozenset(
    {
        ErrorCode.BUCKET_NOT_FOUND,
        ErrorCode.FILE_NOT_FOUND,
        ErrorCode.INVALID_PATHNAME,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.INVALID_VISIBILITY,
    }
)


def _source_untouched(exc: RPCError) -> RPCError:
    if exc.code in _NOTHING_STARTED:
        return exc
    return RPCError(
        exc.code,
        f"{exc.message}; move: the source is untouched and nothing was left at the destination",
        exc.details,
    )


async def _verify_landed(dest: ObjectRef, copied: ObjectInfo) -> None:
    """The destination holds an object of the copied size and checksum, or RPCError."""
    landed = await objects.head(dest)
    if landed.size == copied.size and (
        not landed.checksum or not copied.checksum or landed.checksum == copied.checksum
    ):
        return
    raise RPCError(
        ErrorCode.S3_OPERATION_FAILED,
        "the destination does not hold what was copied, so the source was not deleted; "
        "move: the source is untouched, the destination is left as found",
        f"bucket: {dest.bucket.name}, pathname: {dest.pathname}, copied {copied.size} bytes "
        f"{copied.checksum or ''}, found {landed.size} bytes {landed.checksum or ''}",
    )


async def attach_checksum(
    ref: ObjectRef, headers: Mapping[str, str], written: ObjectInfo
) -> ObjectInfo:
    """Store ``written.checksum`` on an object a multipart upload just completed.

    S3 fixes an object's metadata at CreateMultipartUpload, before a
    streamed upload's bytes (and so their checksum) are known, and changes
    it afterwards only by a copy. So the object is copied onto itself with
    the checksum added to what it was created with (``headers``: content
    type, user metadata, ACL): SeaweedFS and MinIO do that without moving
    data, AWS copies on the service side. The copy is conditional on the
    upload's ETag, so an object replaced in the meantime is left alone. A
    failure is logged, not raised: the object is whole, and only later
    reads go unverified. Answers ``written`` with the object's new ETag.
    """
    created = {**headers, checksums.METADATA_HEADER: written.checksum}
    copy_source = _copy_source(ref.bucket, ref.key)
    try:
        if written.size > ref.bucket.config.multipart_copy_threshold:
            etag = (await _copy_multipart(ref, written.size, created, copy_source)).etag
        else:
            single = {
                **created,
                "x-amz-copy-source": copy_source,
                "x-amz-metadata-directive": "REPLACE",
            }
            if written.etag:
                single["x-amz-copy-source-if-match"] = written.etag
            etag, _, _ = await _copy_object(ref, single)
    except RPCError as exc:
        log.warning(
            "event=checksum_not_stored bucket=%s pathname=%r checksum=%s error=%r",
            ref.bucket.name,
            ref.pathname,
            written.checksum,
            str(exc),
        )
        return written
    return replace(written, etag=etag or written.etag)
