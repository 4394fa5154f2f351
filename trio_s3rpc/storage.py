"""What the ``s3.*`` methods do to storage, bucket by bucket.

:class:`Storage` owns the bucket registry and one :class:`S3Transport` per
configured server. Every call resolves a bucket name (empty means the
configured default), validates the pathname, joins the bucket's prefix, and
makes its storage requests under the bucket's ``CapacityLimiter``. Storage
failures arrive as :class:`S3Error` and leave here as contract errors, mapped
in :func:`map_s3_error` only. Every object written carries the CRC32C of its
bytes in its metadata (``checksums.py``), and whole-object reads check it.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import trio

from trio_s3rpc import checksums
from trio_s3rpc.config import (
    VISIBILITIES,
    BucketConfig,
    S3Settings,
    ServerConfig,
    parse_bucket,
)
from trio_s3rpc.errors import ErrorCode, RPCError, first_error
from trio_s3rpc.mime import content_type_for
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.s3.multipart import (
    MAX_PARTS,
    MultipartTarget,
    copy_part_sender,
    upload_multipart,
)
from trio_s3rpc.s3.transport import S3Error, S3Response, S3Transport

log = logging.getLogger("trio_s3rpc.storage")

MAX_KEY_BYTES = 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
MAX_LIST_KEYS = 1000
_METADATA_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_PROBE_KEY = ".trio-s3rpc-acl-probe"


@dataclass(slots=True)
class Bucket:
    """A registered bucket with the transport and limiter its calls go through."""

    config: BucketConfig
    server: ServerConfig
    transport: S3Transport
    limiter: trio.CapacityLimiter
    # "acl" or "none" once known; "auto" buckets are probed at first use.
    visibility_mode: str = "acl"
    probe_lock: trio.Lock = field(default_factory=trio.Lock)

    @property
    def name(self) -> str:
        return self.config.name

    def key(self, pathname: str) -> str:
        return self.config.prefix + pathname


@dataclass(slots=True, frozen=True)
class ObjectInfo:
    size: int
    last_modified: int
    mime_type: str = ""
    etag: str = ""
    # User metadata as the service sent it (x-amz-meta-* headers, names lowercased).
    metadata: Mapping[str, str] = field(default_factory=dict)
    # "<algorithm>:<hex>" of the object's bytes, when known (see checksums.py).
    checksum: str = ""


@dataclass(slots=True, frozen=True)
class ObjectContent:
    content: bytes
    size: int
    mime_type: str
    last_modified: int


@dataclass(slots=True, frozen=True)
class ListedObject:
    key: str
    size: int
    last_modified: int
    etag: str
    storage_class: str


@dataclass(slots=True, frozen=True)
class Listing:
    objects: list[ListedObject]
    common_prefixes: list[str]
    is_truncated: bool
    next_continuation_token: str
    key_count: int


@dataclass(slots=True, frozen=True)
class DeleteError:
    """A pathname DeleteMany did not delete: a contract code and why."""

    pathname: str
    code: str
    message: str


@dataclass(slots=True, frozen=True)
class DeleteManyResult:
    deleted: list[str]
    errors: list[DeleteError]


def map_s3_error(exc: S3Error, bucket: str, pathname: str = "") -> RPCError:
    """The contract error for a storage failure; the one place they are mapped."""
    where = f"bucket: {bucket}" + (f", pathname: {pathname}" if pathname else "")
    if exc.code in ("NoSuchKey", "NotFound") or (
        exc.status == 404 and exc.code not in ("NoSuchBucket", "NoSuchUpload")
    ):
        return RPCError(ErrorCode.FILE_NOT_FOUND, "File not found", where)
    if exc.status == 403 or exc.code in ("AccessDenied", "AllAccessDisabled"):
        return RPCError(
            ErrorCode.PERMISSION_DENIED,
            f"the storage service refused {exc.operation}: {exc.code}: {exc.message}",
            where,
        )
    if exc.code == "Timeout":
        return RPCError(
            ErrorCode.OPERATION_TIMEOUT, f"{exc.operation} timed out: {exc.message}", where
        )
    return RPCError(
        ErrorCode.S3_OPERATION_FAILED, f"{exc.operation} failed: {exc.code}: {exc.message}", where
    )


def stored_checksum(headers: Mapping[str, str]) -> str:
    """The checksum an object's metadata carries ("" when it has none)."""
    return headers.get(checksums.METADATA_HEADER, "").strip()


def verify_checksum(stored: str, actual: int, bucket: str, pathname: str) -> None:
    """Refuse bytes that do not match the checksum stored with them.

    An object without a checksum (written by something else) or with one of
    an algorithm this server does not compute passes unverified.
    """
    expected = checksums.parse_checksum(stored)
    if expected is None or expected == actual:
        return
    read = checksums.format_checksum(actual)
    log.error(
        "event=checksum_mismatch bucket=%s pathname=%r stored=%s read=%s",
        bucket,
        pathname,
        stored,
        read,
    )
    raise RPCError(
        ErrorCode.S3_OPERATION_FAILED,
        "checksum mismatch: the bytes the storage service returned are not the bytes "
        "that were written",
        f"bucket: {bucket}, pathname: {pathname}, stored checksum {stored}, "
        f"checksum of the bytes read {read}",
    )


def validate_pathname(pathname: str, field_name: str = "pathname") -> None:
    if not pathname:
        raise RPCError(ErrorCode.INVALID_PATHNAME, f"{field_name} is empty")
    if pathname.startswith("/"):
        raise RPCError(
            ErrorCode.INVALID_PATHNAME, f"{field_name} must not start with '/'", pathname
        )
    segments = pathname.split("/")
    if ".." in segments or "." in segments:
        raise RPCError(
            ErrorCode.INVALID_PATHNAME,
            f"{field_name} must not have a '.' or '..' segment",
            pathname,
        )
    if _CONTROL_CHARS.search(pathname):
        raise RPCError(
            ErrorCode.INVALID_PATHNAME,
            f"{field_name} must not contain control characters",
            repr(pathname),
        )


def http_date(value: str | None) -> int:
    """Unix seconds of an HTTP date header (0 when absent or unreadable)."""
    if not value:
        return 0
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return 0


def metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in metadata.items():
        if not _METADATA_NAME.match(name):
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"config key {name!r} is not a valid metadata name "
                "(letters, digits, '-' and '_' only)",
            )
        if name.lower() == checksums.METADATA_NAME:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"config key {name!r} is reserved: it holds the checksum this server "
                "computes for every object it writes",
            )
        if not value.isascii() or _CONTROL_CHARS.search(value):
            # As the AWS SDKs do: RFC 2047 keeps non-ASCII values intact in a header.
            encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
            value = f"=?UTF-8?B?{encoded}?="
        headers[f"x-amz-meta-{name.lower()}"] = value
    return headers


class Storage:
    """The bucket registry and the operations on it."""

    def __init__(self, settings: S3Settings, *, max_read_size: int = 192 * 1024 * 1024) -> None:
        self.settings = settings
        # The largest object one s3.Read answer may carry; larger ones need
        # ReadFile or ranged reads, so a single answer cannot exhaust memory.
        self.max_read_size = max_read_size
        self.default = settings.default
        self._transports: dict[str, S3Transport] = {}
        for server in settings.servers.values():
            connections = sum(
                b.max_concurrent_operations
                for b in settings.buckets.values()
                if b.server == server.name
            )
            self._transports[server.name] = S3Transport(
                server, max_connections=max(10, min(connections, 1000))
            )
        # Multipart uploads this process is working on, and where failed aborts go.
        self.active_uploads: set[str] = set()
        self.on_abort_failed: Callable[[MultipartTarget, str], None] | None = None
        self.buckets: dict[str, Bucket] = {}
        for config in settings.buckets.values():
            self.buckets[config.name] = self._make_bucket(config)

    def _make_bucket(self, config: BucketConfig) -> Bucket:
        return Bucket(
            config=config,
            server=self.settings.servers[config.server],
            transport=self._transports[config.server],
            limiter=trio.CapacityLimiter(config.max_concurrent_operations),
            visibility_mode=config.visibility_mode,
        )

    def multipart_target(
        self, bucket: Bucket, key: str, headers: Mapping[str, str]
    ) -> MultipartTarget:
        """Where a multipart upload to ``key`` goes, with this storage's bookkeeping."""
        return MultipartTarget(
            bucket.transport,
            bucket.config.bucket,
            key,
            bucket.limiter,
            headers,
            on_abort_failed=self.on_abort_failed,
            in_progress=self.active_uploads,
        )

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()

    # -- buckets -----------------------------------------------------------

    def bucket(self, name: str) -> Bucket:
        found = self.buckets.get(name or self.default)
        if found is None:
            raise RPCError(
                ErrorCode.BUCKET_NOT_FOUND,
                "Bucket not found",
                f"bucket: {name or self.default}",
            )
        return found

    def register_bucket(self, name: str, raw: Mapping[str, object]) -> None:
        if not name:
            raise RPCError(ErrorCode.INVALID_CONFIG, "bucket name is empty", "field: name")
        if name in self.buckets:
            raise RPCError(
                ErrorCode.BUCKET_ALREADY_EXISTS, "Bucket already registered", f"bucket: {name}"
            )
        config = parse_bucket(name, raw, self.settings.servers)
        self.buckets[name] = self._make_bucket(config)
        log.info("event=bucket_registered name=%s server=%s", name, config.server)

    # -- requests ----------------------------------------------------------

    async def request(
        self,
        bucket: Bucket,
        operation: str,
        method: str,
        key: str | None,
        pathname: str = "",
        **kwargs: object,
    ) -> S3Response:
        async with bucket.limiter:
            try:
                return await bucket.transport.request(
                    operation,
                    method,
                    bucket.config.bucket,
                    key,
                    **kwargs,  # type: ignore[arg-type]
                )
            except S3Error as exc:
                raise map_s3_error(exc, bucket.name, pathname) from None

    def resolve(self, bucket_name: str, pathname: str) -> tuple[Bucket, str]:
        bucket = self.bucket(bucket_name)
        validate_pathname(pathname)
        key = bucket.key(pathname)
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise RPCError(
                ErrorCode.INVALID_PATHNAME,
                f"the object key is longer than S3's {MAX_KEY_BYTES} bytes",
                f"{len(key.encode('utf-8'))} bytes with the bucket prefix",
            )
        return bucket, key

    # -- visibility --------------------------------------------------------

    async def _mode(self, bucket: Bucket) -> str:
        if bucket.visibility_mode == "auto":
            async with bucket.probe_lock:
                if bucket.visibility_mode == "auto":
                    bucket.visibility_mode = await self._probe_acl_support(bucket)
        return bucket.visibility_mode

    async def _probe_acl_support(self, bucket: Bucket) -> str:
        """Write a public-read marker, read its ACL back, delete it: does the grant stick?"""
        key = bucket.key(_PROBE_KEY)
        transport, name = bucket.transport, bucket.config.bucket
        mode = "none"
        try:
            await transport.request(
                "PutObject", "PUT", name, key, headers={"x-amz-acl": "public-read"}, body=b""
            )
            try:
                response = await transport.request(
                    "GetObjectAcl", "GET", name, key, query={"acl": ""}
                )
                mode = "acl" if s3xml.parse_acl_is_public(response.content) else "none"
            finally:
                await transport.request(
                    "DeleteObject", "DELETE", name, key, ok_statuses=(200, 204, 404)
                )
        except S3Error as exc:
            if exc.status not in (400, 403, 501) and exc.code not in (
                "NotImplemented",
                "AccessControlListNotSupported",
            ):
                raise map_s3_error(exc, bucket.name, _PROBE_KEY) from None
        log.info("event=visibility_probe bucket=%s mode=%s", bucket.name, mode)
        return mode

    async def probe(self, bucket_name: str) -> str:
        """Resolve (and return) a bucket's visibility mode, probing an ``auto`` bucket."""
        return await self._mode(self.bucket(bucket_name))

    async def acl_headers(self, bucket: Bucket, visibility: str) -> dict[str, str]:
        wanted = visibility or bucket.config.visibility
        if wanted not in VISIBILITIES:
            raise RPCError(
                ErrorCode.INVALID_VISIBILITY,
                f"visibility must be 'public' or 'private', got {visibility!r}",
            )
        if await self._mode(bucket) == "none":
            if wanted != bucket.config.visibility:
                raise RPCError(
                    ErrorCode.INVALID_VISIBILITY,
                    f"bucket '{bucket.name}' cannot set per-object visibility: its storage "
                    "service does not support object ACLs (visibility_mode: none), so every "
                    f"object has the bucket's visibility '{bucket.config.visibility}'",
                )
            return {}
        return {"x-amz-acl": "public-read" if wanted == "public" else "private"}

    # -- objects -----------------------------------------------------------

    async def new_object_headers(
        self,
        bucket: Bucket,
        pathname: str,
        metadata: Mapping[str, str],
        visibility: str,
        content_type: str = "",
    ) -> dict[str, str]:
        """What a new object is created with: content type, user metadata, canned ACL."""
        headers = {"Content-Type": content_type or content_type_for(pathname)}
        headers.update(metadata_headers(metadata))
        headers.update(await self.acl_headers(bucket, visibility))
        return headers

    async def put_object(
        self, bucket: Bucket, key: str, pathname: str, headers: Mapping[str, str], body: bytes
    ) -> ObjectInfo:
        """One PutObject with its whole-object checksum in the metadata."""
        checksum = checksums.format_checksum(checksums.crc32c(body))
        response = await self.request(
            bucket,
            "PutObject",
            "PUT",
            key,
            pathname,
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

    async def write(
        self,
        bucket_name: str,
        pathname: str,
        content: bytes,
        metadata: Mapping[str, str],
        visibility: str,
        content_type: str = "",
    ) -> ObjectInfo:
        bucket, key = self.resolve(bucket_name, pathname)
        headers = await self.new_object_headers(
            bucket, pathname, metadata, visibility, content_type
        )
        if len(content) <= bucket.config.part_size:
            return await self.put_object(bucket, key, pathname, headers, content)
        # The content is all here: its checksum goes with it, even into a multipart upload.
        headers[checksums.METADATA_HEADER] = checksums.format_checksum(checksums.crc32c(content))
        return await self._write_multipart(bucket, key, pathname, content, headers)

    async def _write_multipart(
        self, bucket: Bucket, key: str, pathname: str, content: bytes, headers: dict[str, str]
    ) -> ObjectInfo:
        part_size = bucket.config.part_size
        view = memoryview(content)

        async def parts() -> AsyncIterator[bytes]:
            for start in range(0, len(view), part_size):
                yield bytes(view[start : start + part_size])

        target = self.multipart_target(bucket, key, headers)
        try:
            done = await upload_multipart(target, parts(), concurrency=bucket.config.concurrency)
        except S3Error as exc:
            raise map_s3_error(exc, bucket.name, pathname) from None
        return ObjectInfo(
            size=done.size,
            last_modified=int(time.time()),
            mime_type=headers["Content-Type"],
            etag=done.etag,
            checksum=headers.get(checksums.METADATA_HEADER, ""),
        )

    async def read(
        self, bucket_name: str, pathname: str, offset: int = 0, length: int | None = None
    ) -> ObjectContent:
        bucket, key = self.resolve(bucket_name, pathname)
        if offset < 0 or (length is not None and length < 0):
            raise RPCError(ErrorCode.INVALID_REQUEST, "offset and length must not be negative")
        ranged = offset > 0 or length is not None
        if length == 0:
            info = await self.head(bucket_name, pathname)
            return ObjectContent(b"", info.size, info.mime_type, info.last_modified)
        headers: dict[str, str] = {}
        if ranged:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        limit = self.max_read_size
        past_the_end = False
        async with bucket.limiter:
            try:
                async with bucket.transport.stream(
                    "GetObject", "GET", bucket.config.bucket, key, headers=headers
                ) as response:
                    announced = int(response.headers.get("content-length", "0"))
                    if announced > limit:
                        raise RPCError(
                            ErrorCode.INVALID_REQUEST,
                            f"the object is {announced} bytes, more than one answer may carry "
                            f"({limit}); use s3.ReadFile or a ranged s3.Read (offset, length)",
                            f"bucket: {bucket.name}, pathname: {pathname}",
                        )
                    # Raw: the bytes as stored, even for objects saved with a Content-Encoding.
                    content = b"".join([chunk async for chunk in response.aiter_raw()])
            except S3Error as exc:
                if exc.status != 416:
                    raise map_s3_error(exc, bucket.name, pathname) from None
                past_the_end = True
        if past_the_end:
            # An offset at or past the end: no bytes, but the caller still gets the size.
            info = await self.head(bucket_name, pathname)
            return ObjectContent(b"", info.size, info.mime_type, info.last_modified)
        size = len(content)
        if ranged:
            size = _total_from_content_range(response.headers.get("content-range", ""), size)
        if offset == 0 and len(content) == size:
            # The whole object (a range may cover it all): check it against its checksum.
            stored = stored_checksum(response.headers)
            if stored:
                verify_checksum(stored, checksums.crc32c(content), bucket.name, pathname)
        return ObjectContent(
            content=content,
            size=size,
            mime_type=response.headers.get("content-type", ""),
            last_modified=http_date(response.headers.get("last-modified")),
        )

    async def head(self, bucket_name: str, pathname: str) -> ObjectInfo:
        bucket, key = self.resolve(bucket_name, pathname)
        response = await self.request(bucket, "HeadObject", "HEAD", key, pathname)
        return ObjectInfo(
            size=int(response.headers.get("content-length", "0")),
            last_modified=http_date(response.headers.get("last-modified")),
            mime_type=response.headers.get("content-type", ""),
            etag=response.headers.get("etag", ""),
            metadata={
                name: value
                for name, value in response.headers.items()
                if name.startswith("x-amz-meta-")
            },
            checksum=stored_checksum(response.headers),
        )

    async def exists(self, bucket_name: str, pathname: str) -> bool:
        try:
            await self.head(bucket_name, pathname)
        except RPCError as exc:
            if exc.code is ErrorCode.FILE_NOT_FOUND:
                return False
            raise
        return True

    async def delete(self, bucket_name: str, pathname: str) -> None:
        bucket, key = self.resolve(bucket_name, pathname)
        await self.request(
            bucket, "DeleteObject", "DELETE", key, pathname, ok_statuses=(200, 204, 404)
        )

    async def metadata(self, bucket_name: str, pathname: str) -> tuple[ObjectInfo, str]:
        """HeadObject and the object's visibility; in ACL mode both requests at once."""
        bucket, _ = self.resolve(bucket_name, pathname)
        if await self._mode(bucket) == "none":
            return await self.head(bucket_name, pathname), bucket.config.visibility
        visibility = ""

        async def read_visibility() -> None:
            nonlocal visibility
            visibility = await self.visibility(bucket_name, pathname)

        with first_error():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_visibility)
                info = await self.head(bucket_name, pathname)
        return info, visibility

    async def visibility(self, bucket_name: str, pathname: str) -> str:
        bucket, key = self.resolve(bucket_name, pathname)
        if await self._mode(bucket) == "none":
            return bucket.config.visibility
        try:
            async with bucket.limiter:
                response = await bucket.transport.request(
                    "GetObjectAcl", "GET", bucket.config.bucket, key, query={"acl": ""}
                )
        except S3Error as exc:
            if exc.status == 501 or exc.code in ("NotImplemented", "AccessControlListNotSupported"):
                return bucket.config.visibility
            raise map_s3_error(exc, bucket.name, pathname) from None
        return "public" if s3xml.parse_acl_is_public(response.content) else "private"

    async def set_visibility(self, bucket_name: str, pathname: str, visibility: str) -> None:
        bucket, key = self.resolve(bucket_name, pathname)
        if not visibility:
            raise RPCError(ErrorCode.INVALID_VISIBILITY, "visibility is empty")
        headers = await self.acl_headers(bucket, visibility)
        if not headers:
            return  # a "none" bucket asked for its own visibility: nothing to change
        await self.request(
            bucket, "PutObjectAcl", "PUT", key, pathname, query={"acl": ""}, headers=headers
        )

    async def copy(
        self,
        source_bucket: str,
        source_pathname: str,
        dest_bucket: str,
        dest_pathname: str,
        metadata: Mapping[str, str],
        visibility: str,
    ) -> ObjectInfo:
        source, source_key = self.resolve(source_bucket, source_pathname)
        dest, dest_key = self.resolve(dest_bucket, dest_pathname)
        if source.transport is not dest.transport:
            raise RPCError(
                ErrorCode.S3_OPERATION_FAILED,
                "copy between buckets on different servers is not supported",
                f"source server: {source.config.server}, destination server: {dest.config.server}",
            )
        info = await self.head(source_bucket, source_pathname)
        headers = await self.acl_headers(dest, visibility)
        headers["x-amz-copy-source"] = "/" + urllib.parse.quote(
            f"{source.config.bucket}/{source_key}", safe="/"
        )
        if metadata:
            headers["x-amz-metadata-directive"] = "REPLACE"
            headers["Content-Type"] = info.mime_type or content_type_for(dest_pathname)
            headers.update(metadata_headers(metadata))
            if info.checksum:
                # New user metadata, same bytes: the checksum stays.
                headers[checksums.METADATA_HEADER] = info.checksum
        else:
            headers["x-amz-metadata-directive"] = "COPY"
        if info.checksum and info.etag:
            # The checksum answered (and for REPLACE, stored) is the one read by
            # HEAD: the copy must be of that very object.
            headers["x-amz-copy-source-if-match"] = info.etag
        if info.size > dest.config.multipart_copy_threshold:
            return await self._copy_multipart(dest, dest_key, dest_pathname, info, headers)
        response = await self.request(
            dest, "CopyObject", "PUT", dest_key, dest_pathname, headers=headers
        )
        try:
            etag, last_modified = s3xml.parse_copy_result(response.content, "CopyObject")
        except S3Error as exc:
            raise map_s3_error(exc, dest.name, dest_pathname) from None
        return ObjectInfo(
            size=info.size,
            last_modified=last_modified or http_date(response.headers.get("date")),
            mime_type=info.mime_type,
            etag=etag,
            checksum=info.checksum,
        )

    async def _copy_multipart(
        self,
        dest: Bucket,
        dest_key: str,
        dest_pathname: str,
        source: ObjectInfo,
        copy_headers: dict[str, str],
    ) -> ObjectInfo:
        """CopyObject stops at 5 GiB: copy larger objects part by part on the service."""
        copy_source = copy_headers.pop("x-amz-copy-source")
        directive = copy_headers.pop("x-amz-metadata-directive")
        copy_headers.pop("x-amz-copy-source-if-match", None)  # not a CreateMultipartUpload header
        headers = dict(copy_headers)
        if directive == "COPY":
            headers["Content-Type"] = source.mime_type or content_type_for(dest_pathname)
            headers.update(source.metadata)
        part_size = max(dest.config.part_size, -(-source.size // MAX_PARTS))

        async def spans() -> AsyncIterator[tuple[int, int]]:
            for start in range(0, source.size, part_size):
                yield start, min(start + part_size, source.size)

        target = self.multipart_target(dest, dest_key, headers)
        try:
            done = await upload_multipart(
                target,
                spans(),
                concurrency=dest.config.concurrency,
                send_part=copy_part_sender(target, copy_source),
            )
        except S3Error as exc:
            raise map_s3_error(exc, dest.name, dest_pathname) from None
        return ObjectInfo(
            size=done.size,
            last_modified=int(time.time()),
            mime_type=headers.get("Content-Type", ""),
            etag=done.etag,
            checksum=headers.get(checksums.METADATA_HEADER, ""),
        )

    async def attach_checksum(
        self,
        bucket: Bucket,
        key: str,
        pathname: str,
        headers: Mapping[str, str],
        written: ObjectInfo,
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
        copy_headers = dict(headers)
        copy_headers[checksums.METADATA_HEADER] = written.checksum
        copy_headers["x-amz-copy-source"] = "/" + urllib.parse.quote(
            f"{bucket.config.bucket}/{key}", safe="/"
        )
        copy_headers["x-amz-metadata-directive"] = "REPLACE"
        if written.etag:
            copy_headers["x-amz-copy-source-if-match"] = written.etag
        try:
            if written.size > bucket.config.multipart_copy_threshold:
                copied = await self._copy_multipart(bucket, key, pathname, written, copy_headers)
                etag = copied.etag
            else:
                response = await self.request(
                    bucket, "CopyObject", "PUT", key, pathname, headers=copy_headers
                )
                etag, _ = s3xml.parse_copy_result(response.content, "CopyObject")
        except (RPCError, S3Error) as exc:
            log.warning(
                "event=checksum_not_stored bucket=%s pathname=%r checksum=%s error=%r",
                bucket.name,
                pathname,
                written.checksum,
                str(exc),
            )
            return written
        return replace(written, etag=etag or written.etag)

    async def delete_many(self, bucket_name: str, pathnames: Sequence[str]) -> DeleteManyResult:
        """Delete many objects, 1000 keys per DeleteObjects request, batches in parallel.

        Each pathname succeeds or fails on its own: an invalid one, one the
        service refuses, or one in a batch whose request failed is reported in
        ``errors`` (in request order); the rest are ``deleted``. Repeated
        pathnames are deleted (and reported) once.
        """
        bucket = self.bucket(bucket_name)
        errors: list[DeleteError] = []
        keys: dict[str, str] = {}  # key -> pathname, in request order
        for pathname in pathnames:
            try:
                _, key = self.resolve(bucket.name, pathname)
            except RPCError as exc:
                message = f"{exc.message} ({exc.details})" if exc.details else exc.message
                errors.append(DeleteError(pathname, str(exc.code), message))
                continue
            keys.setdefault(key, pathname)
        items = list(keys.items())
        batches = [
            items[start : start + s3xml.MAX_DELETE_KEYS]
            for start in range(0, len(items), s3xml.MAX_DELETE_KEYS)
        ]
        results: list[DeleteManyResult] = [DeleteManyResult([], [])] * len(batches)
        in_flight = trio.CapacityLimiter(bucket.config.concurrency)

        async def run(index: int, batch: list[tuple[str, str]]) -> None:
            async with in_flight:
                results[index] = await self._delete_batch(bucket, batch)

        with first_error():
            async with trio.open_nursery() as nursery:
                for index, batch in enumerate(batches):
                    nursery.start_soon(run, index, batch)
        order = {pathname: position for position, pathname in enumerate(pathnames)}
        errors += [error for result in results for error in result.errors]
        errors.sort(key=lambda error: order.get(error.pathname, len(order)))
        return DeleteManyResult([p for result in results for p in result.deleted], errors)

    async def _delete_batch(self, bucket: Bucket, batch: list[tuple[str, str]]) -> DeleteManyResult:
        """One DeleteObjects request (the transport adds the Content-MD5 S3 requires)."""
        body = s3xml.build_delete_objects([key for key, _ in batch], quiet=True)
        try:
            response = await self.request(
                bucket,
                "DeleteObjects",
                "POST",
                None,
                query={"delete": ""},
                headers={"Content-Type": "application/xml"},
                body=body,
            )
            try:
                result = s3xml.parse_delete_result(response.content)
            except S3Error as exc:
                raise map_s3_error(exc, bucket.name) from None
        except RPCError as exc:
            # The whole request failed: no key of this batch is known to be deleted.
            message = f"{exc.message} ({exc.details})" if exc.details else exc.message
            return DeleteManyResult(
                [], [DeleteError(pathname, str(exc.code), message) for _, pathname in batch]
            )
        pathnames = dict(batch)
        refused: dict[str, DeleteError] = {}
        for failure in result.errors:
            if failure.code in ("NoSuchKey", "NotFound"):
                continue  # deleting what is not there succeeds, as DeleteObject does
            denied = failure.code == "AccessDenied"
            code = ErrorCode.PERMISSION_DENIED if denied else ErrorCode.S3_OPERATION_FAILED
            pathname = pathnames.get(failure.key, failure.key[len(bucket.config.prefix) :])
            refused[pathname] = DeleteError(
                pathname,
                str(code),
                f"DeleteObjects refused this key: {failure.code}: {failure.message}",
            )
        deleted = [pathname for _, pathname in batch if pathname not in refused]
        return DeleteManyResult(deleted, list(refused.values()))

    async def move(
        self,
        source_bucket: str,
        source_pathname: str,
        dest_bucket: str,
        dest_pathname: str,
        metadata: Mapping[str, str],
        visibility: str,
    ) -> ObjectInfo:
        source, source_key = self.resolve(source_bucket, source_pathname)
        dest, dest_key = self.resolve(dest_bucket, dest_pathname)
        if (
            source.config.bucket == dest.config.bucket
            and source_key == dest_key
            and (source.transport is dest.transport)
        ):
            raise RPCError(
                ErrorCode.INVALID_PATHNAME,
                "move source and destination are the same object",
                f"bucket: {source.name}, pathname: {source_pathname}",
            )
        info = await self.copy(
            source_bucket, source_pathname, dest_bucket, dest_pathname, metadata, visibility
        )
        try:
            await self.delete(source_bucket, source_pathname)
        except RPCError as exc:
            raise RPCError(
                exc.code,
                f"the copy to {dest.name}/{dest_pathname} landed but the source could not be "
                f"deleted: {exc.message}",
                exc.details,
            ) from None
        return info

    def public_url(self, bucket_name: str, pathname: str, expires_in: int) -> tuple[str, int]:
        bucket, key = self.resolve(bucket_name, pathname)
        if expires_in < 0 or expires_in > MAX_PRESIGN_SECONDS:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"expires_in must be between 0 (permanent URL) and {MAX_PRESIGN_SECONDS} "
                f"seconds (7 days), got {expires_in}",
            )
        if expires_in == 0:
            if bucket.config.public_url:
                base = bucket.config.public_url.rstrip("/")
                return f"{base}/{urllib.parse.quote(key, safe='/~')}", 0
            return bucket.transport.url_for(bucket.config.bucket, key), 0
        url = bucket.transport.presign_get(bucket.config.bucket, key, expires_in)
        return url, int(time.time()) + expires_in

    async def list_objects(
        self,
        bucket_name: str,
        prefix: str,
        delimiter: str,
        max_keys: int,
        continuation_token: str,
    ) -> Listing:
        bucket = self.bucket(bucket_name)
        if max_keys < 0:
            raise RPCError(
                ErrorCode.INVALID_REQUEST, f"max_keys must not be negative, got {max_keys}"
            )
        query = {
            "list-type": "2",
            "prefix": bucket.config.prefix + prefix,
            "max-keys": str(min(max_keys or MAX_LIST_KEYS, MAX_LIST_KEYS)),
        }
        if delimiter:
            query["delimiter"] = delimiter
        if continuation_token:
            query["continuation-token"] = continuation_token
        response = await self.request(bucket, "ListObjectsV2", "GET", None, query=query)
        try:
            result = s3xml.parse_list_objects_v2(response.content)
        except S3Error as exc:
            raise map_s3_error(exc, bucket.name) from None
        strip = len(bucket.config.prefix)
        return Listing(
            objects=[
                ListedObject(
                    key=item.key[strip:],
                    size=item.size,
                    last_modified=item.last_modified,
                    etag=item.etag,
                    storage_class=item.storage_class,
                )
                for item in result.contents
            ],
            common_prefixes=[p[strip:] for p in result.common_prefixes],
            is_truncated=result.is_truncated,
            next_continuation_token=result.next_continuation_token,
            key_count=result.key_count,
        )


def _total_from_content_range(header: str, fallback: int) -> int:
    """The total size from ``Content-Range: bytes a-b/TOTAL``."""
    _, _, total = header.rpartition("/")
    return int(total) if total.isdigit() else fallback
