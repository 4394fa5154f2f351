"""Objects one request at a time: Write, Read, head, Exists, Delete, GetMetadata,
GetPublicURL and ListObjects.

Every operation takes an already-resolved :class:`ObjectRef` (or
:class:`Bucket`) and makes its requests through the bucket's one request
path. Every object written carries the CRC32C of its bytes in its metadata
(``checksums.py``), and whole-object reads check it.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

import trio

from trio_s3rpc import budget, checksums
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.mime import content_type_for
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.s3.limits import MAX_LIST_KEYS
from trio_s3rpc.s3.multipart import upload_multipart
from trio_s3rpc.s3.parts import plan_parts
from trio_s3rpc.sniff import SNIFF_BYTES, content_type_of
from trio_s3rpc.storage import visibility
from trio_s3rpc.storage.archival import archival_headers, archival_of
from trio_s3rpc.storage.buckets import Bucket, ObjectRef, StorageError, validate_pathname
from trio_s3rpc.storage.records import (
    NewObject,
    ObjectContent,
    ObjectHeaders,
    ObjectInfo,
    http_date,
    metadata_headers,
    stored_checksum,
    verify_checksum,
)
from trio_s3rpc.storage.tokens import open_continuation, seal_continuation
from trio_s3rpc.trioutil import first_error

MAX_PRESIGN_SECONDS = 7 * 24 * 3600
MAX_POST_SIZE = 5 * 1024**3  # S3 takes at most 5 GiB in one POST upload
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


async def new_object_headers(ref: ObjectRef, new: NewObject, head: bytes = b"") -> dict[str, str]:
    """What a new object is created with: its content type (``new.content_type``, else
    the pathname's extension, else the content's first bytes ``head``), standard headers,
    user metadata, and visibility and archival settings (:func:`settings_headers`)."""
    content_type = new.content_type or content_type_of(ref.pathname, head)
    headers = {"Content-Type": content_type, **new.headers.http()}
    headers.update(metadata_headers(new.metadata))
    headers.update(await settings_headers(ref, new))
    return headers


async def copy_headers(dest: ObjectRef, source: ObjectInfo, new: NewObject) -> dict[str, str]:
    """What the copy of ``source`` at ``dest`` is created with: the source's content type,
    standard headers, user metadata and checksum (the same bytes), the metadata and each
    header ``new`` gives replacing the source's, and ``new``'s settings."""
    content_type = source.mime_type or content_type_for(dest.pathname)
    headers = {"Content-Type": content_type, **new.headers.over(source.headers).http()}
    headers.update(metadata_headers(new.metadata) if new.metadata else source.user_metadata())
    if source.checksum:
        headers[checksums.METADATA_HEADER] = source.checksum
    headers.update(await settings_headers(dest, new))
    return headers


async def settings_headers(ref: ObjectRef, new: NewObject) -> dict[str, str]:
    """The canned ACL of ``new.visibility`` and the storage class and encryption of
    ``new.archival``, over the bucket's defaults: what a copy that keeps its source's
    metadata (``COPY``) still sets."""
    headers = archival_headers(ref.bucket.config, new.archival)
    headers.update(await visibility.acl_headers(ref.bucket, new.visibility))
    return headers


async def put_object(ref: ObjectRef, headers: Mapping[str, str], body: bytes) -> ObjectInfo:
    """One PutObject with its whole-object checksum in the metadata."""
    checksum = checksums.format_checksum(checksums.crc32c(body))
    response = await ref.bucket.request(
        "PutObject",
        "PUT",
        ref.key,
        headers={**headers, checksums.METADATA_HEADER: checksum},
        body=body,
    )
    return ObjectInfo(
        size=len(body),
        last_modified=http_date(response.headers.get("date")) or int(time.time()),
        mime_type=headers["Content-Type"],
        etag=response.headers.get("etag", ""),
        checksum=checksum,
    )


async def write(ref: ObjectRef, content: bytes, new: NewObject) -> ObjectInfo:
    headers = await new_object_headers(ref, new, content[:SNIFF_BYTES])
    if len(content) <= ref.bucket.config.part_size:
        return await put_object(ref, headers, content)
    # The content is all here: its checksum goes with it, even into a multipart upload.
    headers[checksums.METADATA_HEADER] = checksums.format_checksum(checksums.crc32c(content))
    return await _write_multipart(ref, content, headers)


async def _write_multipart(ref: ObjectRef, content: bytes, headers: dict[str, str]) -> ObjectInfo:
    bucket = ref.bucket
    view = memoryview(content)
    with bucket.errors(ref.key):
        plan = plan_parts(len(content), bucket.config.part_size)

        async def parts() -> AsyncIterator[bytes]:
            for _, offset, length in plan.spans():
                yield bytes(view[offset : offset + length])

        target = bucket.multipart(ref.key, headers)
        done = await upload_multipart(target, parts(), concurrency=bucket.config.concurrency)
    return ObjectInfo.uploaded(done, headers)


async def read(
    ref: ObjectRef,
    offset: int = 0,
    length: int | None = None,
    *,
    max_size: int,
    if_match: str = "",
) -> ObjectContent:
    """The object's bytes (or a range of them); at most ``max_size`` in one answer.

    With ``if_match`` (an ETag an earlier Read answered) the bytes must come
    from that version: the service checks ``If-Match``, and a replaced object
    is ``OBJECT_CHANGED``, so a caller reading in ranges never joins two
    versions' bytes.
    """
    bucket = ref.bucket
    if offset < 0 or (length is not None and length < 0):
        raise RPCError(ErrorCode.INVALID_REQUEST, "offset and length must not be negative")
    ranged = offset > 0 or length is not None
    if length == 0:
        return _no_bytes(await head(ref), ref, if_match)
    headers: dict[str, str] = {}
    if ranged:
        end = "" if length is None else str(offset + length - 1)
        headers["Range"] = f"bytes={offset}-{end}"
    if if_match:
        headers["If-Match"] = _etag_header(if_match)
    try:
        async with bucket.stream("GetObject", "GET", ref.key, headers) as response:
            announced = int(response.headers.get("content-length", "0"))
            if announced > max_size:
                raise RPCError(
                    ErrorCode.INVALID_REQUEST,
                    f"the object is {announced} bytes, more than one answer may carry "
                    f"({max_size}); use s3.ReadFile or a ranged s3.Read (offset, length)",
                    f"bucket: {bucket.name}, pathname: {ref.pathname}",
                )
            if announced >= budget.COUNTED_FROM:
                # Counted (and waited for) before any byte is read, held until
                # answered: the body, and the answer it is encoded into meanwhile.
                await budget.keep(2 * announced, f"s3.Read of {ref.pathname}")
            # Raw: the bytes as stored, even for objects saved with a Content-Encoding.
            content = await response.aread()
    except StorageError as exc:
        if exc.status == 412:
            raise _changed(ref, if_match) from None
        if exc.status != 416:
            raise
        # An offset at or past the end: no bytes, but the caller still gets the size.
        return _no_bytes(await head(ref), ref, if_match)
    etag = response.headers.get("etag", "")
    if if_match and etag and etag != if_match:
        # A service that ignores If-Match on GET: the answer's own ETag still tells.
        raise _changed(ref, if_match, etag)
    size = len(content)
    if ranged:
        size = _total_from_content_range(response.headers.get("content-range", ""), size)
    if offset == 0 and len(content) == size:
        # The whole object (a range may cover it all): check it against its checksum.
        stored = stored_checksum(response.headers)
        if stored:
            verify_checksum(stored, checksums.crc32c(content), bucket.name, ref.pathname)
    return ObjectContent(
        content=content,
        size=size,
        mime_type=response.headers.get("content-type", ""),
        last_modified=http_date(response.headers.get("last-modified")),
        etag=etag,
    )


def _etag_header(if_match: str) -> str:
    """``if_match`` as a header value; anything else (a CR/LF, non-ASCII) is refused."""
    if not if_match.isascii() or not if_match.isprintable() or len(if_match) > 1024:
        raise RPCError(
            ErrorCode.INVALID_REQUEST,
            "field 'if_match' must be an ETag as s3.Read answers it (printable ASCII)",
            repr(if_match[:80]),
        )
    return if_match


def _no_bytes(info: ObjectInfo, ref: ObjectRef, if_match: str) -> ObjectContent:
    """An answer without content (length 0, or an offset past the end), version-checked."""
    if if_match and info.etag != if_match:
        raise _changed(ref, if_match, info.etag)
    return ObjectContent(b"", info.size, info.mime_type, info.last_modified, info.etag)


def _changed(ref: ObjectRef, if_match: str, found: str = "") -> RPCError:
    now = f", now {found}" if found else ""
    return RPCError(
        ErrorCode.OBJECT_CHANGED,
        "the object was replaced since the version asked for (if_match) was read",
        f"bucket: {ref.bucket.name}, pathname: {ref.pathname}, if_match: {if_match}{now}",
    )


def _total_from_content_range(header: str, fallback: int) -> int:
    """The total size from ``Content-Range: bytes a-b/TOTAL``."""
    _, _, total = header.rpartition("/")
    return int(total) if total.isdigit() else fallback


async def head(ref: ObjectRef) -> ObjectInfo:
    response = await ref.bucket.request("HeadObject", "HEAD", ref.key)
    return info_from_headers(response.headers)


def info_from_headers(headers: Mapping[str, str]) -> ObjectInfo:
    """What a HeadObject answer says about the object."""
    return ObjectInfo(
        size=int(headers.get("content-length", "0")),
        last_modified=http_date(headers.get("last-modified")),
        mime_type=headers.get("content-type", ""),
        etag=headers.get("etag", ""),
        metadata={name: value for name, value in headers.items() if name.startswith("x-amz-meta-")},
        checksum=stored_checksum(headers),
        archival=archival_of(headers),
        headers=ObjectHeaders.from_response(headers),
    )


async def exists(ref: ObjectRef) -> bool:
    try:
        # HeadObject, its answer not read into an ObjectInfo: only its status counts.
        await ref.bucket.request("HeadObject", "HEAD", ref.key)
    except RPCError as exc:
        if exc.code is ErrorCode.FILE_NOT_FOUND:
            return False
        raise
    return True


async def delete(ref: ObjectRef) -> None:
    await ref.bucket.request("DeleteObject", "DELETE", ref.key, ok_statuses=(200, 204, 404))


async def metadata(ref: ObjectRef) -> tuple[ObjectInfo, str]:
    """HeadObject and the object's visibility; in ACL mode both requests at once."""
    if await visibility.mode(ref.bucket) == "none":
        return await head(ref), ref.bucket.config.visibility
    found = ""

    async def read_visibility() -> None:
        nonlocal found
        found = await visibility.read(ref)

    with first_error():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_visibility)
            info = await head(ref)
    return info, found


def _check_expiry(expires_in: int, *, permanent_allowed: bool) -> None:
    low = 0 if permanent_allowed else 1
    if expires_in < low or expires_in > MAX_PRESIGN_SECONDS:
        what = "0 (permanent URL)" if permanent_allowed else "1"
        raise RPCError(
            ErrorCode.INVALID_REQUEST,
            f"expires_in must be between {what} and {MAX_PRESIGN_SECONDS} seconds (7 days), "
            f"got {expires_in}",
        )


def public_url(
    ref: ObjectRef,
    expires_in: int,
    response_content_type: str = "",
    response_content_disposition: str = "",
) -> tuple[str, int]:
    """A permanent URL (``expires_in`` 0) or a presigned GET, and when it expires.

    ``response_*`` make the service answer the download with those headers (a
    named download); they are part of the signature, so only presigned URLs
    take them. URLs are made for the server's ``public_endpoint`` when it has one.
    """
    bucket = ref.bucket
    _check_expiry(expires_in, permanent_allowed=True)
    query = {}
    for field_name, value in (
        ("response_content_type", response_content_type),
        ("response_content_disposition", response_content_disposition),
    ):
        if value:
            if expires_in == 0:
                raise RPCError(
                    ErrorCode.INVALID_REQUEST,
                    f"{field_name} needs a presigned URL: give expires_in (seconds) too",
                )
            if _CONTROL_CHARS.search(value):
                raise RPCError(
                    ErrorCode.INVALID_REQUEST, f"field '{field_name}' has control characters"
                )
            query[field_name.replace("_", "-")] = value
    if expires_in == 0:
        if bucket.config.public_url:
            base = bucket.config.public_url.rstrip("/")
            return f"{base}/{urllib.parse.quote(ref.key, safe='/~')}", 0
        return bucket.transport.public_url_for(bucket.config.bucket, ref.key), 0
    url = bucket.transport.presign("GET", bucket.config.bucket, ref.key, expires_in, query=query)
    return url, int(time.time()) + expires_in


async def upload_url(
    ref: ObjectRef, expires_in: int, content_type: str, visibility_name: str
) -> tuple[str, dict[str, str], int]:
    """A presigned PUT: its URL, the headers the uploader must send, and its expiry.

    The headers are signed: a content type, when one is asked for, and in
    ``acl`` mode the canned ACL of the asked (or the bucket's) visibility.
    """
    bucket = ref.bucket
    _check_expiry(expires_in, permanent_allowed=False)
    headers: dict[str, str] = {}
    if content_type:
        if not content_type.isascii() or _CONTROL_CHARS.search(content_type):
            raise RPCError(
                ErrorCode.INVALID_REQUEST, "field 'content_type' must be printable ASCII"
            )
        headers["Content-Type"] = content_type
    headers.update(await visibility.acl_headers(bucket, visibility_name))
    url = bucket.transport.presign(
        "PUT", bucket.config.bucket, ref.key, expires_in, headers=headers
    )
    return url, headers, int(time.time()) + expires_in


async def upload_form(
    bucket: Bucket,
    key_prefix: str,
    max_size: int,
    min_size: int,
    content_type_prefix: str,
    expires_in: int,
    visibility_name: str,
) -> tuple[str, dict[str, str], int]:
    """A presigned POST policy for browser uploads: the form's URL, its fields, its expiry.

    The service refuses a POST whose key does not start with the bucket's
    prefix + ``key_prefix``, whose size is outside ``min_size..max_size``, or
    whose Content-Type field does not start with ``content_type_prefix``.
    The ``key`` field ends with S3's ``${filename}``: the uploaded file's name.
    """
    _check_expiry(expires_in, permanent_allowed=False)
    if key_prefix:
        # A prefix is a pathname's beginning: the same rules, checked on a name under it.
        validate_pathname(key_prefix + "x", "key_prefix")
    if not 0 <= min_size <= max_size or not 0 < max_size <= MAX_POST_SIZE:
        raise RPCError(
            ErrorCode.INVALID_REQUEST,
            f"max_size must be 1..{MAX_POST_SIZE} bytes and min_size 0..max_size, "
            f"got min_size {min_size}, max_size {max_size}",
        )
    if not content_type_prefix.isascii() or _CONTROL_CHARS.search(content_type_prefix):
        raise RPCError(
            ErrorCode.INVALID_REQUEST, "field 'content_type_prefix' must be printable ASCII"
        )
    full_prefix = bucket.config.prefix + key_prefix
    fields = {"key": full_prefix + "${filename}"}
    conditions: list[object] = [
        {"bucket": bucket.config.bucket},
        ["starts-with", "$key", full_prefix],
        ["content-length-range", min_size, max_size],
        # Always present, so the form may carry a Content-Type field (an empty prefix: any).
        ["starts-with", "$Content-Type", content_type_prefix],
    ]
    acl = await visibility.acl_headers(bucket, visibility_name)
    if acl:
        fields["acl"] = acl["x-amz-acl"]
        conditions.append({"acl": fields["acl"]})
    url, signed = bucket.transport.presign_post(bucket.config.bucket, conditions, expires_in)
    return url, {**fields, **signed}, int(time.time()) + expires_in


async def list_objects(
    bucket: Bucket, prefix: str, delimiter: str, max_keys: int, continuation_token: str
) -> s3xml.ListObjectsResult:
    if max_keys < 0:
        raise RPCError(ErrorCode.INVALID_REQUEST, f"max_keys must not be negative, got {max_keys}")
    query = {
        "list-type": "2",
        "prefix": bucket.config.prefix + prefix,
        "max-keys": str(min(max_keys or MAX_LIST_KEYS, MAX_LIST_KEYS)),
    }
    if delimiter:
        query["delimiter"] = delimiter
    secret = bucket.server.credentials.secret
    if continuation_token:
        query["continuation-token"] = open_continuation(continuation_token, bucket.name, secret)
    response = await bucket.request("ListObjectsV2", "GET", None, query=query)
    with bucket.errors():
        result = s3xml.parse_list_objects_v2(response.content)
    # Keys are pathnames: the bucket's prefix is taken off, and the service's
    # token, which may spell it out, is sealed.
    strip = len(bucket.config.prefix)
    token = result.next_continuation_token
    return replace(
        result,
        contents=[replace(item, key=item.key[strip:]) for item in result.contents],
        common_prefixes=[p[strip:] for p in result.common_prefixes],
        next_continuation_token=seal_continuation(bucket.name, token, secret) if token else "",
    )
