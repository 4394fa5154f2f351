"""The ``s3.*`` methods: their typed requests, their answers, and their handlers.

Field names are the wire names of ``rpc-api.md``. Each handler is a thin
translation between a request dataclass and one :class:`Storage` operation;
the behaviour lives in ``storage.py`` (and ``transfers.py`` for files and
chunked uploads).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from trio_s3rpc.config import parse_bucket
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.rpc.registry import MethodRegistry
from trio_s3rpc.rpc.typed import Binary, omitempty
from trio_s3rpc.storage import Storage
from trio_s3rpc.transfers import Transfers
from trio_s3rpc.uploads import ChunkedUploads

# -- buckets ---------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RegisterBucketRequest:
    name: str
    server: str
    bucket: str
    prefix: str = ""
    visibility: str = ""
    max_concurrent_operations: int | None = None
    part_size: int | None = None
    concurrency: int | None = None
    public_url: str = ""
    visibility_mode: str = ""


@dataclass(slots=True, frozen=True)
class RegisterBucketResponse:
    success: bool
    message: str


@dataclass(slots=True, frozen=True)
class ListBucketsRequest:
    pass


@dataclass(slots=True, frozen=True)
class ListBucketsResponse:
    buckets: list[str]
    default: str


# -- objects ---------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class WriteRequest:
    pathname: str
    content: Binary
    bucket: str = ""
    config: dict[str, str] = field(default_factory=dict)
    visibility: str = ""


@dataclass(slots=True, frozen=True)
class ObjectWrittenResponse:
    success: bool
    pathname: str
    size: int
    last_modified: int
    # "<algorithm>:<hex>" of the object's bytes (a Copy of an object without one has none).
    checksum: str = omitempty("")


@dataclass(slots=True, frozen=True)
class ReadRequest:
    pathname: str
    bucket: str = ""
    offset: int = 0
    length: int | None = None


@dataclass(slots=True, frozen=True)
class ReadResponse:
    content: bytes
    size: int
    mime_type: str
    last_modified: int


@dataclass(slots=True, frozen=True)
class PathRequest:
    pathname: str
    bucket: str = ""


@dataclass(slots=True, frozen=True)
class ExistsResponse:
    exists: bool


@dataclass(slots=True, frozen=True)
class SuccessResponse:
    success: bool


@dataclass(slots=True, frozen=True)
class CopyRequest:
    source_pathname: str
    dest_pathname: str
    source_bucket: str = ""
    dest_bucket: str = ""
    config: dict[str, str] = field(default_factory=dict)
    visibility: str = ""


@dataclass(slots=True, frozen=True)
class MetadataResponse:
    size: int
    mime_type: str
    last_modified: int
    visibility: str
    etag: str = omitempty("")
    checksum: str = omitempty("")


@dataclass(slots=True, frozen=True)
class SetVisibilityRequest:
    pathname: str
    visibility: str
    bucket: str = ""


@dataclass(slots=True, frozen=True)
class PublicURLRequest:
    pathname: str
    bucket: str = ""
    expires_in: int = 0


@dataclass(slots=True, frozen=True)
class PublicURLResponse:
    url: str
    expires_at: int = omitempty(0)


@dataclass(slots=True, frozen=True)
class ListObjectsRequest:
    bucket: str = ""
    prefix: str = ""
    delimiter: str = ""
    max_keys: int = 1000
    continuation_token: str = ""


@dataclass(slots=True, frozen=True)
class ObjectEntry:
    key: str
    size: int
    last_modified: int
    etag: str
    storage_class: str = omitempty("")


@dataclass(slots=True, frozen=True)
class PrefixEntry:
    prefix: str


@dataclass(slots=True, frozen=True)
class ListObjectsResponse:
    objects: list[ObjectEntry]
    is_truncated: bool
    key_count: int
    common_prefixes: list[PrefixEntry] = omitempty(None)
    next_continuation_token: str = omitempty("")


# -- large files and chunked uploads ---------------------------------------


@dataclass(slots=True, frozen=True)
class WriteFileRequest:
    pathname: str
    source_path: str
    bucket: str = ""
    visibility: str = ""
    config: dict[str, str] = field(default_factory=dict)
    content_type: str = ""
    resume: bool = False


@dataclass(slots=True, frozen=True)
class ReadFileRequest:
    pathname: str
    destination_path: str
    bucket: str = ""


@dataclass(slots=True, frozen=True)
class ReadFileResponse:
    success: bool
    size: int
    mime_type: str
    last_modified: int
    # The stored checksum the file's bytes were verified against, when the object has one.
    checksum: str = omitempty("")


@dataclass(slots=True, frozen=True)
class UploadStartRequest:
    pathname: str
    bucket: str = ""
    visibility: str = ""
    config: dict[str, str] = field(default_factory=dict)
    content_type: str = ""


@dataclass(slots=True, frozen=True)
class UploadStartResponse:
    upload_id: str


@dataclass(slots=True, frozen=True)
class UploadChunkRequest:
    upload_id: str
    content: Binary
    offset: int | None = None


@dataclass(slots=True, frozen=True)
class UploadChunkResponse:
    success: bool
    size: int


@dataclass(slots=True, frozen=True)
class UploadIdRequest:
    upload_id: str


@dataclass(slots=True, frozen=True)
class UploadStatusResponse:
    committed_bytes: int
    parts: int


@dataclass(slots=True, frozen=True)
class UploadFinishResponse:
    success: bool
    pathname: str
    size: int
    last_modified: int
    checksum: str = omitempty("")


@dataclass(slots=True, frozen=True)
class DeleteManyRequest:
    pathnames: list[str]
    bucket: str = ""


@dataclass(slots=True, frozen=True)
class DeleteErrorEntry:
    pathname: str
    code: str
    message: str


@dataclass(slots=True, frozen=True)
class DeleteManyResponse:
    deleted: list[str]
    errors: list[DeleteErrorEntry]


class S3Methods:
    """Handlers for the original plugin's methods, bound to one Storage."""

    def __init__(
        self,
        storage: Storage,
        transfers: Transfers,
        uploads: ChunkedUploads,
        *,
        register_everywhere: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.storage = storage
        self.transfers = transfers
        self.uploads = uploads
        # Under workers: registers a checked bucket on every worker of the service.
        self.register_everywhere = register_everywhere

    def register(self, registry: MethodRegistry) -> None:
        add = registry.add
        add(
            "s3.RegisterBucket", RegisterBucketRequest, RegisterBucketResponse, self.register_bucket
        )
        add("s3.ListBuckets", ListBucketsRequest, ListBucketsResponse, self.list_buckets)
        add("s3.Write", WriteRequest, ObjectWrittenResponse, self.write)
        add("s3.Read", ReadRequest, ReadResponse, self.read)
        add("s3.Exists", PathRequest, ExistsResponse, self.exists)
        add("s3.Delete", PathRequest, SuccessResponse, self.delete)
        add("s3.DeleteMany", DeleteManyRequest, DeleteManyResponse, self.delete_many)
        add("s3.Copy", CopyRequest, ObjectWrittenResponse, self.copy)
        add("s3.Move", CopyRequest, ObjectWrittenResponse, self.move)
        add("s3.GetMetadata", PathRequest, MetadataResponse, self.get_metadata)
        add("s3.SetVisibility", SetVisibilityRequest, SuccessResponse, self.set_visibility)
        add(
            "s3.GetPublicURL", PublicURLRequest, PublicURLResponse, self.get_public_url, inline=True
        )
        add("s3.ListObjects", ListObjectsRequest, ListObjectsResponse, self.list_objects)
        add("s3.WriteFile", WriteFileRequest, ObjectWrittenResponse, self.write_file)
        add("s3.ReadFile", ReadFileRequest, ReadFileResponse, self.read_file)
        add("s3.UploadStart", UploadStartRequest, UploadStartResponse, self.upload_start)
        add("s3.UploadChunk", UploadChunkRequest, UploadChunkResponse, self.upload_chunk)
        add("s3.UploadStatus", UploadIdRequest, UploadStatusResponse, self.upload_status)
        add("s3.UploadFinish", UploadIdRequest, UploadFinishResponse, self.upload_finish)
        add("s3.UploadAbort", UploadIdRequest, SuccessResponse, self.upload_abort)

    async def register_bucket(self, req: RegisterBucketRequest) -> RegisterBucketResponse:
        raw: dict[str, object] = {"server": req.server, "bucket": req.bucket, "prefix": req.prefix}
        optional: dict[str, object] = {
            "visibility": req.visibility,
            "max_concurrent_operations": req.max_concurrent_operations,
            "part_size": req.part_size,
            "concurrency": req.concurrency,
            "public_url": req.public_url,
            "visibility_mode": req.visibility_mode,
        }
        raw.update({k: v for k, v in optional.items() if v not in (None, "")})
        if self.register_everywhere is None:
            self.storage.register_bucket(req.name, raw)
        else:
            # Refuse here what every worker would refuse, then let the supervisor order it.
            if not req.name:
                raise RPCError(ErrorCode.INVALID_CONFIG, "bucket name is empty", "field: name")
            if req.name in self.storage.buckets:
                raise RPCError(
                    ErrorCode.BUCKET_ALREADY_EXISTS,
                    "Bucket already registered",
                    f"bucket: {req.name}",
                )
            parse_bucket(req.name, raw, self.storage.settings.servers)
            await self.register_everywhere(req.name, raw)
        return RegisterBucketResponse(True, "Bucket registered successfully")

    async def list_buckets(self, req: ListBucketsRequest) -> ListBucketsResponse:
        return ListBucketsResponse(sorted(self.storage.buckets), self.storage.default)

    async def write(self, req: WriteRequest) -> ObjectWrittenResponse:
        info = await self.storage.write(
            req.bucket, req.pathname, req.content, req.config, req.visibility
        )
        return ObjectWrittenResponse(
            True, req.pathname, info.size, info.last_modified, info.checksum
        )

    async def read(self, req: ReadRequest) -> ReadResponse:
        got = await self.storage.read(req.bucket, req.pathname, req.offset, req.length)
        return ReadResponse(got.content, got.size, got.mime_type, got.last_modified)

    async def exists(self, req: PathRequest) -> ExistsResponse:
        return ExistsResponse(await self.storage.exists(req.bucket, req.pathname))

    async def delete(self, req: PathRequest) -> SuccessResponse:
        await self.storage.delete(req.bucket, req.pathname)
        return SuccessResponse(True)

    async def delete_many(self, req: DeleteManyRequest) -> DeleteManyResponse:
        result = await self.storage.delete_many(req.bucket, req.pathnames)
        return DeleteManyResponse(
            result.deleted,
            [DeleteErrorEntry(e.pathname, e.code, e.message) for e in result.errors],
        )

    async def copy(self, req: CopyRequest) -> ObjectWrittenResponse:
        info = await self.storage.copy(
            req.source_bucket,
            req.source_pathname,
            req.dest_bucket,
            req.dest_pathname,
            req.config,
            req.visibility,
        )
        return ObjectWrittenResponse(
            True, req.dest_pathname, info.size, info.last_modified, info.checksum
        )

    async def move(self, req: CopyRequest) -> ObjectWrittenResponse:
        info = await self.storage.move(
            req.source_bucket,
            req.source_pathname,
            req.dest_bucket,
            req.dest_pathname,
            req.config,
            req.visibility,
        )
        return ObjectWrittenResponse(
            True, req.dest_pathname, info.size, info.last_modified, info.checksum
        )

    async def get_metadata(self, req: PathRequest) -> MetadataResponse:
        info, visibility = await self.storage.metadata(req.bucket, req.pathname)
        return MetadataResponse(
            info.size, info.mime_type, info.last_modified, visibility, info.etag, info.checksum
        )

    async def set_visibility(self, req: SetVisibilityRequest) -> SuccessResponse:
        await self.storage.set_visibility(req.bucket, req.pathname, req.visibility)
        return SuccessResponse(True)

    async def get_public_url(self, req: PublicURLRequest) -> PublicURLResponse:
        url, expires_at = self.storage.public_url(req.bucket, req.pathname, req.expires_in)
        return PublicURLResponse(url, expires_at)

    async def list_objects(self, req: ListObjectsRequest) -> ListObjectsResponse:
        listing = await self.storage.list_objects(
            req.bucket, req.prefix, req.delimiter, req.max_keys, req.continuation_token
        )
        return ListObjectsResponse(
            objects=[
                ObjectEntry(o.key, o.size, o.last_modified, o.etag, o.storage_class)
                for o in listing.objects
            ],
            is_truncated=listing.is_truncated,
            key_count=listing.key_count,
            common_prefixes=[PrefixEntry(p) for p in listing.common_prefixes],
            next_continuation_token=listing.next_continuation_token,
        )

    async def write_file(self, req: WriteFileRequest) -> ObjectWrittenResponse:
        info = await self.transfers.write_file(
            req.bucket,
            req.pathname,
            req.source_path,
            req.visibility,
            req.config,
            req.content_type,
            req.resume,
        )
        return ObjectWrittenResponse(
            True, req.pathname, info.size, info.last_modified, info.checksum
        )

    async def read_file(self, req: ReadFileRequest) -> ReadFileResponse:
        info = await self.transfers.read_file(req.bucket, req.pathname, req.destination_path)
        return ReadFileResponse(True, info.size, info.mime_type, info.last_modified, info.checksum)

    async def upload_start(self, req: UploadStartRequest) -> UploadStartResponse:
        upload_id = await self.uploads.start(
            req.bucket, req.pathname, req.visibility, req.config, req.content_type
        )
        return UploadStartResponse(upload_id)

    async def upload_chunk(self, req: UploadChunkRequest) -> UploadChunkResponse:
        received = await self.uploads.chunk(req.upload_id, req.content, req.offset)
        return UploadChunkResponse(True, received)

    async def upload_status(self, req: UploadIdRequest) -> UploadStatusResponse:
        status = await self.uploads.status(req.upload_id)
        return UploadStatusResponse(status.committed_bytes, status.parts)

    async def upload_finish(self, req: UploadIdRequest) -> UploadFinishResponse:
        pathname, info = await self.uploads.finish(req.upload_id)
        return UploadFinishResponse(True, pathname, info.size, info.last_modified, info.checksum)

    async def upload_abort(self, req: UploadIdRequest) -> SuccessResponse:
        await self.uploads.abort(req.upload_id)
        return SuccessResponse(True)
