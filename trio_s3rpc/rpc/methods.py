"""The ``s3.*`` methods' handlers (their request and answer records are in ``typed.py``).

Each handler is a thin
translation between a request dataclass and one operation of the
``storage`` package: it resolves the bucket name and pathname once
(:meth:`Storage.resolve`) and hands the resolved object on. The behaviour
lives in ``storage/`` (``objects``, ``copies``, ``deletes``, ``visibility``,
``files`` and ``chunked``). ``s3.TransferStatus`` and ``s3.Cancel`` read and
stop calls through ``rpc/control.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.rpc.control import CallControl, Transfer
from trio_s3rpc.rpc.registry import BucketLabel, Counted, MethodRegistry
from trio_s3rpc.rpc.typed import (
    BucketInfoResponse,
    BucketRequest,
    CancelResponse,
    CopyRequest,
    DeleteManyRequest,
    ExistsResponse,
    ListBucketsRequest,
    ListBucketsResponse,
    ListObjectsRequest,
    ListObjectsResponse,
    MetadataResponse,
    ObjectEntry,
    ObjectWrittenResponse,
    PathRequest,
    PrefixEntry,
    PublicURLRequest,
    PublicURLResponse,
    ReadFileRequest,
    ReadFileResponse,
    ReadRequest,
    RegisterBucketDecoder,
    RegisterBucketRequest,
    RegisterBucketResponse,
    SetVisibilityRequest,
    SuccessResponse,
    TransferIdRequest,
    TransferStatusResponse,
    UploadChunkRequest,
    UploadChunkResponse,
    UploadFinishRequest,
    UploadFinishResponse,
    UploadFormRequest,
    UploadFormResponse,
    UploadIdRequest,
    UploadStartRequest,
    UploadStartResponse,
    UploadStatusResponse,
    UploadURLRequest,
    UploadURLResponse,
    WriteFileRequest,
    WriteRequest,
)
from trio_s3rpc.storage import copies, deletes, objects, visibility
from trio_s3rpc.storage.buckets import ObjectRef, Storage
from trio_s3rpc.storage.chunked import ChunkedUploads
from trio_s3rpc.storage.files import Files
from trio_s3rpc.storage.records import DeleteManyResult, NewObject, ObjectContent, ObjectInfo


class S3Methods:
    """Handlers for the original plugin's methods, bound to one Storage."""

    def __init__(
        self,
        storage: Storage,
        files: Files,
        uploads: ChunkedUploads,
        *,
        register_everywhere: Callable[[str, dict[str, str | int]], Awaitable[None]] | None = None,
    ) -> None:
        self.storage = storage
        self.files = files
        self.uploads = uploads
        # Under workers: registers a checked bucket on every worker of the service.
        self.register_everywhere = register_everywhere

    def register(self, registry: MethodRegistry) -> None:
        """Every ``s3.*`` method but TransferStatus and Cancel, each declared once:
        records, handler, and how the metrics count it (the Go plugin's operation
        names where it has the method)."""
        add = registry.add
        add(
            "s3.RegisterBucket",
            RegisterBucketRequest,
            RegisterBucketResponse,
            self.register_bucket,
            decoder=RegisterBucketDecoder(),
            counted=Counted(("register_bucket",), BucketLabel.REGISTERED),
        )
        registry.add_now(
            "s3.ListBuckets",
            ListBucketsRequest,
            ListBucketsResponse,
            self.list_buckets,
            counted=Counted(("list_buckets",), BucketLabel.NONE),
        )
        add(
            "s3.GetBucketInfo",
            BucketRequest,
            BucketInfoResponse,
            self.get_bucket_info,
            counted=Counted(("get_bucket_info",)),
        )
        add(
            "s3.Write",
            WriteRequest,
            ObjectWrittenResponse,
            self.write,
            counted=Counted(("write",), written=_request_content),
        )
        add(
            "s3.Read",
            ReadRequest,
            ObjectContent,
            self.read,
            counted=Counted(("read",), read=_answer_content),
        )
        add("s3.Exists", PathRequest, ExistsResponse, self.exists, counted=Counted(("exists",)))
        add("s3.Delete", PathRequest, SuccessResponse, self.delete, counted=Counted(("delete",)))
        add(
            "s3.DeleteMany",
            DeleteManyRequest,
            DeleteManyResult,
            self.delete_many,
            counted=Counted(("delete_many",)),
        )
        add(
            "s3.Copy",
            CopyRequest,
            ObjectWrittenResponse,
            self.copy,
            counted=Counted(("copy",), BucketLabel.COPY),
        )
        add(
            "s3.Move",
            CopyRequest,
            ObjectWrittenResponse,
            self.move,
            counted=Counted(("copy", "delete"), BucketLabel.COPY),
        )
        add(
            "s3.GetMetadata",
            PathRequest,
            MetadataResponse,
            self.get_metadata,
            counted=Counted(("get_metadata",)),
        )
        add(
            "s3.SetVisibility",
            SetVisibilityRequest,
            SuccessResponse,
            self.set_visibility,
            counted=Counted(("set_visibility",)),
        )
        registry.add_now(
            "s3.GetPublicURL",
            PublicURLRequest,
            PublicURLResponse,
            self.get_public_url,
            counted=Counted(("get_url",)),
        )
        add(
            "s3.GetUploadURL",
            UploadURLRequest,
            UploadURLResponse,
            self.get_upload_url,
            counted=Counted(("get_upload_url",)),
        )
        add(
            "s3.GetUploadForm",
            UploadFormRequest,
            UploadFormResponse,
            self.get_upload_form,
            counted=Counted(("get_upload_form",)),
        )
        add(
            "s3.ListObjects",
            ListObjectsRequest,
            ListObjectsResponse,
            self.list_objects,
            counted=Counted(("list",)),
        )
        add(
            "s3.WriteFile",
            WriteFileRequest,
            ObjectWrittenResponse,
            self.write_file,
            counted=Counted(("write_file",), written=_answer_size),
        )
        add(
            "s3.ReadFile",
            ReadFileRequest,
            ReadFileResponse,
            self.read_file,
            counted=Counted(("read_file",), read=_answer_size),
        )
        add(
            "s3.UploadStart",
            UploadStartRequest,
            UploadStartResponse,
            self.upload_start,
            counted=Counted(("upload_start",)),
        )
        add(
            "s3.UploadChunk",
            UploadChunkRequest,
            UploadChunkResponse,
            self.upload_chunk,
            counted=Counted(("upload_chunk",), BucketLabel.UPLOAD, written=_request_content),
        )
        add(
            "s3.UploadStatus",
            UploadIdRequest,
            UploadStatusResponse,
            self.upload_status,
            counted=Counted(("upload_status",), BucketLabel.UPLOAD),
        )
        add(
            "s3.UploadFinish",
            UploadFinishRequest,
            UploadFinishResponse,
            self.upload_finish,
            counted=Counted(("upload_finish",), BucketLabel.UPLOAD),
        )
        add(
            "s3.UploadAbort",
            UploadIdRequest,
            SuccessResponse,
            self.upload_abort,
            counted=Counted(("upload_abort",), BucketLabel.UPLOAD),
        )

    async def register_bucket(self, req: RegisterBucketRequest) -> RegisterBucketResponse:
        raw = dict(req.settings)
        if self.register_everywhere is None:
            self.storage.register_bucket(req.name, raw)
        else:
            # Refuse here what every worker would refuse, then let the supervisor order it.
            self.storage.admit(req.name, raw)
            await self.register_everywhere(req.name, raw)
        return RegisterBucketResponse(True, "Bucket registered successfully")

    def list_buckets(self, req: ListBucketsRequest) -> ListBucketsResponse:
        return ListBucketsResponse(sorted(self.storage.buckets), self.storage.default)

    async def get_bucket_info(self, req: BucketRequest) -> BucketInfoResponse:
        bucket = self.storage.bucket(req.bucket)
        mode = await visibility.mode(bucket)
        return BucketInfoResponse(bucket.name, mode, bucket.config.visibility)

    async def write(self, req: WriteRequest) -> ObjectWrittenResponse:
        ref = self.storage.resolve(req.bucket, req.pathname)
        info = await objects.write(ref, req.content, req.new_object(req.content_type))
        return ObjectWrittenResponse(
            True, req.pathname, info.size, info.last_modified, info.checksum
        )

    async def read(self, req: ReadRequest) -> ObjectContent:
        ref = self.storage.resolve(req.bucket, req.pathname)
        # Answered as it is: content, size, mime_type, last_modified, etag.
        return await objects.read(
            ref, req.offset, req.length, max_size=self.storage.max_read_size, if_match=req.if_match
        )

    async def exists(self, req: PathRequest) -> ExistsResponse:
        return ExistsResponse(await objects.exists(self.storage.resolve(req.bucket, req.pathname)))

    async def delete(self, req: PathRequest) -> SuccessResponse:
        await objects.delete(self.storage.resolve(req.bucket, req.pathname))
        return SuccessResponse(True)

    async def delete_many(self, req: DeleteManyRequest) -> DeleteManyResult:
        # Answered as it is: deleted, and errors of pathname, code, message.
        limit = self.storage.settings.max_delete_pathnames
        if len(req.pathnames) > limit:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"{len(req.pathnames)} pathnames in one s3.DeleteMany, more than "
                f"s3.max_delete_pathnames allows ({limit}); send them in several calls",
            )
        return await deletes.delete_many(self.storage.bucket(req.bucket), req.pathnames)

    async def copy(self, req: CopyRequest) -> ObjectWrittenResponse:
        return await self._copy(req, copies.copy)

    async def move(self, req: CopyRequest) -> ObjectWrittenResponse:
        return await self._copy(req, copies.move)

    async def _copy(
        self,
        req: CopyRequest,
        operation: Callable[[ObjectRef, ObjectRef, NewObject], Awaitable[ObjectInfo]],
    ) -> ObjectWrittenResponse:
        source = self.storage.resolve(req.source_bucket, req.source_pathname)
        dest = self.storage.resolve(req.dest_bucket, req.dest_pathname)
        info = await operation(source, dest, req.new_object())
        return ObjectWrittenResponse(
            True, req.dest_pathname, info.size, info.last_modified, info.checksum
        )

    async def get_metadata(self, req: PathRequest) -> MetadataResponse:
        ref = self.storage.resolve(req.bucket, req.pathname)
        info, seen = await objects.metadata(ref)
        return MetadataResponse(
            info.size,
            info.mime_type,
            info.last_modified,
            seen,
            info.etag,
            info.checksum,
            info.archival.storage_class,
            info.archival.sse,
            info.archival.sse_kms_key_id,
            info.headers.cache_control,
            info.headers.content_disposition,
            info.headers.content_encoding,
            info.headers.content_language,
            info.headers.expires,
            info.user_fields(),
        )

    async def set_visibility(self, req: SetVisibilityRequest) -> SuccessResponse:
        await visibility.update(self.storage.resolve(req.bucket, req.pathname), req.visibility)
        return SuccessResponse(True)

    def get_public_url(self, req: PublicURLRequest) -> PublicURLResponse:
        ref = self.storage.resolve(req.bucket, req.pathname)
        url, expires_at = objects.public_url(
            ref, req.expires_in, req.response_content_type, req.response_content_disposition
        )
        return PublicURLResponse(url, expires_at)

    async def get_upload_url(self, req: UploadURLRequest) -> UploadURLResponse:
        ref = self.storage.resolve(req.bucket, req.pathname)
        url, headers, expires_at = await objects.upload_url(
            ref, req.expires_in, req.content_type, req.visibility
        )
        return UploadURLResponse(url, headers, expires_at)

    async def get_upload_form(self, req: UploadFormRequest) -> UploadFormResponse:
        url, fields, expires_at = await objects.upload_form(
            self.storage.bucket(req.bucket),
            req.key_prefix,
            req.max_size,
            req.min_size,
            req.content_type_prefix,
            req.expires_in,
            req.visibility,
        )
        return UploadFormResponse(url, fields, expires_at)

    async def list_objects(self, req: ListObjectsRequest) -> ListObjectsResponse:
        listing = await objects.list_objects(
            self.storage.bucket(req.bucket),
            req.prefix,
            req.delimiter,
            req.max_keys,
            req.continuation_token,
        )
        return ListObjectsResponse(
            objects=[
                ObjectEntry(item.key, item.size, item.last_modified, item.etag, item.storage_class)
                for item in listing.contents
            ],
            is_truncated=listing.is_truncated,
            key_count=listing.key_count,
            common_prefixes=[PrefixEntry(p) for p in listing.common_prefixes],
            next_continuation_token=listing.next_continuation_token,
        )

    async def write_file(self, req: WriteFileRequest) -> ObjectWrittenResponse:
        info = await self.files.write_file(
            self.storage.resolve(req.bucket, req.pathname),
            req.source_path,
            req.new_object(req.content_type),
            req.resume,
        )
        return ObjectWrittenResponse(
            True, req.pathname, info.size, info.last_modified, info.checksum
        )

    async def read_file(self, req: ReadFileRequest) -> ReadFileResponse:
        ref = self.storage.resolve(req.bucket, req.pathname)
        info = await self.files.read_file(ref, req.destination_path, req.mode)
        return ReadFileResponse(True, info.size, info.mime_type, info.last_modified, info.checksum)

    async def upload_start(self, req: UploadStartRequest) -> UploadStartResponse:
        ref = self.storage.resolve(req.bucket, req.pathname)
        upload_id = await self.uploads.start(ref, req.new_object(req.content_type))
        return UploadStartResponse(upload_id)

    async def upload_chunk(self, req: UploadChunkRequest) -> UploadChunkResponse:
        received = await self.uploads.chunk(req.upload_id, req.content, req.offset)
        return UploadChunkResponse(True, received)

    async def upload_status(self, req: UploadIdRequest) -> UploadStatusResponse:
        status = await self.uploads.status(req.upload_id)
        return UploadStatusResponse(status.committed_bytes, status.parts)

    async def upload_finish(self, req: UploadFinishRequest) -> UploadFinishResponse:
        if req.size is None:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                "field 'size' is required: the total bytes sent, so the finish can check "
                "that the service holds every one of them",
                "s3.UploadFinish",
            )
        pathname, info = await self.uploads.finish(req.upload_id, req.size)
        return UploadFinishResponse(True, pathname, info.size, info.last_modified, info.checksum)

    async def upload_abort(self, req: UploadIdRequest) -> SuccessResponse:
        await self.uploads.abort(req.upload_id)
        return SuccessResponse(True)


class RemoteTransfers(Protocol):
    """The other workers of the service, asked about transfers this process does not run."""

    async def transfer_status(self, transfer_id: str) -> TransferStatusResponse | None:
        """The TransferStatus answer of the worker running it, or None."""

    async def cancel(self, transfer_id: str) -> CancelResponse | None:
        """The Cancel answer of the worker running it, or None."""


def status_answer(transfer: Transfer) -> TransferStatusResponse:
    done = transfer.progress
    return TransferStatusResponse(
        state=transfer.state,
        bytes_done=done.bytes_done,
        bytes_total=done.bytes_total,
        parts_done=done.parts_done,
        parts_total=done.parts_total,
        started_at=int(transfer.started_at),
        method=transfer.method,
        finished_at=int(transfer.finished_at),
    )


def cancel_answer(control: CallControl, transfer_id: str) -> CancelResponse:
    cancelled = control.cancel(transfer_id)
    return CancelResponse(
        cancelled, "cancelling" if cancelled else control.status(transfer_id).state
    )


def register_control_methods(
    registry: MethodRegistry, control: CallControl, remote: RemoteTransfers | None = None
) -> None:
    """TransferStatus and Cancel; under workers a transfer unknown here is looked for
    on the other workers (``remote``) before the answer is that none exists."""

    async def transfer_status(req: TransferIdRequest) -> TransferStatusResponse:
        try:
            return status_answer(control.status(req.transfer_id))
        except RPCError:
            found = None if remote is None else await remote.transfer_status(req.transfer_id)
            if found is None:
                raise
            return found

    async def cancel(req: TransferIdRequest) -> CancelResponse:
        try:
            return cancel_answer(control, req.transfer_id)
        except RPCError:
            found = None if remote is None else await remote.cancel(req.transfer_id)
            if found is None:
                raise
            return found

    # Answered inline (they only read the call registry); their own field is transfer_id.
    methods: tuple[tuple[str, type, Callable[[TransferIdRequest], Awaitable[Any]], str], ...] = (
        ("s3.TransferStatus", TransferStatusResponse, transfer_status, "transfer_status"),
        ("s3.Cancel", CancelResponse, cancel, "cancel"),
    )
    for name, answer, handler, operation in methods:
        registry.add(
            name,
            TransferIdRequest,
            answer,
            handler,
            inline=True,
            controllable=False,
            counted=Counted((operation,), BucketLabel.NONE),
        )


# Object bytes a successful call moved (``Counted.written``/``read``).


def _request_content(request: Any, response: Any) -> int:
    return len(request.content)


def _answer_content(request: Any, response: Any) -> int:
    return len(response.content)


def _answer_size(request: Any, response: Any) -> int:
    return int(response.size)
