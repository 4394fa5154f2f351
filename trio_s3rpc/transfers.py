"""Files of any size in bounded memory: WriteFile, ReadFile and chunked uploads.

A PHP application hands over a local path (or a stream of chunks) instead of
base64 content in one frame, so memory here is bounded by the parts in
flight, never by the file's size:

- WriteFile reads each part from disk as it is sent; above ``part_size`` it
  is a multipart upload with ``concurrency`` parts in flight.
- ReadFile downloads ``part_size`` ranges in parallel into a temporary file
  beside the destination, written at their offsets as the bytes stream in,
  and renames it into place only when every byte has arrived.
- Chunked uploads (UploadStart/Chunk/Finish/Abort) feed parts into a
  multipart upload that runs in the session's own task; a chunk call waits
  while ``concurrency`` parts are in flight.

Local paths are confined to ``s3.local_roots`` after resolving symlinks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from trio_s3rpc.errors import ErrorCode, RPCError, first_error
from trio_s3rpc.mime import content_type_for
from trio_s3rpc.s3.multipart import CompletedUpload, upload_multipart
from trio_s3rpc.s3.transport import S3Error
from trio_s3rpc.storage import (
    Bucket,
    ObjectInfo,
    Storage,
    http_date,
    map_s3_error,
    metadata_headers,
)

log = logging.getLogger("trio_s3rpc.transfers")

WRITE_CHUNK = 1024 * 1024


class LocalPaths:
    """Confines local file access to configured roots, checked after resolving symlinks."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = tuple(Path(os.path.realpath(root)) for root in roots)

    def confine(self, path: str, field_name: str) -> Path:
        if not path:
            raise RPCError(ErrorCode.INVALID_REQUEST, f"field '{field_name}' is empty")
        if "\x00" in path:
            raise RPCError(ErrorCode.INVALID_REQUEST, f"field '{field_name}' contains a NUL byte")
        if not os.path.isabs(path):
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"field '{field_name}' must be an absolute path",
                f"path: {path}",
            )
        resolved = Path(os.path.realpath(path))
        for root in self.roots:
            if resolved == root or root in resolved.parents:
                return resolved
        raise RPCError(
            ErrorCode.PERMISSION_DENIED,
            f"{field_name} is outside the directories this server may use (s3.local_roots)",
            f"path: {path}",
        )


def _local_error(exc: OSError, field_name: str, path: Path) -> RPCError:
    if isinstance(exc, FileNotFoundError):
        return RPCError(ErrorCode.FILE_NOT_FOUND, f"{field_name} does not exist", f"path: {path}")
    if isinstance(exc, PermissionError):
        return RPCError(
            ErrorCode.PERMISSION_DENIED, f"{field_name} is not accessible", f"path: {path}"
        )
    if isinstance(exc, IsADirectoryError):
        return RPCError(ErrorCode.INVALID_REQUEST, f"{field_name} is a directory", f"path: {path}")
    return RPCError(
        ErrorCode.S3_OPERATION_FAILED,
        f"local file error on {field_name}: {exc.strerror or exc}",
        f"path: {path}",
    )


async def _pread(fd: int, size: int, offset: int) -> bytes:
    return await trio.to_thread.run_sync(os.pread, fd, size, offset)


async def _pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = await trio.to_thread.run_sync(os.pwrite, fd, view, offset)
        view = view[written:]
        offset += written


class Transfers:
    """WriteFile and ReadFile over a Storage."""

    def __init__(self, storage: Storage, local_roots: Sequence[str]) -> None:
        self.storage = storage
        self.paths = LocalPaths(local_roots)

    async def write_file(
        self,
        bucket_name: str,
        pathname: str,
        source_path: str,
        visibility: str,
        metadata: Mapping[str, str],
        content_type: str,
    ) -> ObjectInfo:
        bucket, key = self.storage.resolve(bucket_name, pathname)
        path = self.paths.confine(source_path, "source_path")
        headers = {"Content-Type": content_type or content_type_for(pathname)}
        headers.update(metadata_headers(metadata))
        headers.update(await self.storage.acl_headers(bucket, visibility))
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise _local_error(exc, "source_path", path) from None
        try:
            size = os.fstat(fd).st_size
            if size <= bucket.config.part_size:
                data = await _pread(fd, size, 0)
                response = await self.storage.request(
                    bucket, "PutObject", "PUT", key, pathname, headers=headers, body=data
                )
                return ObjectInfo(
                    size=len(data),
                    last_modified=http_date(response.headers.get("date")) or int(time.time()),
                    mime_type=headers["Content-Type"],
                    etag=response.headers.get("etag", ""),
                )
            done = await self._upload_from_fd(bucket, key, pathname, headers, fd, size)
        except OSError as exc:
            raise _local_error(exc, "source_path", path) from None
        finally:
            os.close(fd)
        if done.size != size:
            raise RPCError(
                ErrorCode.S3_OPERATION_FAILED,
                "source_path changed size while it was uploaded",
                f"expected {size} bytes, sent {done.size}",
            )
        return ObjectInfo(
            size=done.size,
            last_modified=int(time.time()),
            mime_type=headers["Content-Type"],
            etag=done.etag,
        )

    async def _upload_from_fd(
        self,
        bucket: Bucket,
        key: str,
        pathname: str,
        headers: Mapping[str, str],
        fd: int,
        size: int,
    ) -> CompletedUpload:
        part_size = bucket.config.part_size

        async def parts() -> AsyncIterator[bytes]:
            for offset in range(0, size, part_size):
                yield await _pread(fd, min(part_size, size - offset), offset)

        target = self.storage.multipart_target(bucket, key, headers)
        try:
            return await upload_multipart(target, parts(), concurrency=bucket.config.concurrency)
        except S3Error as exc:
            raise map_s3_error(exc, bucket.name, pathname) from None

    async def read_file(self, bucket_name: str, pathname: str, destination_path: str) -> ObjectInfo:
        bucket, key = self.storage.resolve(bucket_name, pathname)
        destination = self._destination(destination_path)
        info = await self.storage.head(bucket_name, pathname)
        temporary = destination.with_name(
            f".{destination.name}.{secrets.token_hex(6)}.trio-s3rpc-part"
        )
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise _local_error(exc, "destination_path", destination) from None
        try:
            try:
                os.ftruncate(fd, info.size)
                written = await self._download_into(bucket, key, pathname, info, fd)
                if written != info.size:
                    raise RPCError(
                        ErrorCode.S3_OPERATION_FAILED,
                        "GetObject delivered a different number of bytes than the object has",
                        f"expected {info.size}, got {written}",
                    )
                await trio.to_thread.run_sync(os.fsync, fd)
            finally:
                os.close(fd)
            os.replace(temporary, destination)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return info

    def _destination(self, destination_path: str) -> Path:
        # The destination may not exist yet: confine its directory, keep its name.
        if not destination_path or destination_path.endswith("/"):
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                "field 'destination_path' must name a file",
                f"path: {destination_path}",
            )
        parent = self.paths.confine(os.path.dirname(destination_path) or "/", "destination_path")
        destination = parent / os.path.basename(destination_path)
        if destination.is_symlink() or destination.exists():
            destination = self.paths.confine(str(destination), "destination_path")
            if destination.is_dir():
                raise RPCError(
                    ErrorCode.INVALID_REQUEST,
                    "destination_path is a directory",
                    f"path: {destination_path}",
                )
        if not parent.is_dir():
            raise RPCError(
                ErrorCode.FILE_NOT_FOUND,
                "the directory of destination_path does not exist",
                f"path: {destination_path}",
            )
        return destination

    async def _download_into(
        self, bucket: Bucket, key: str, pathname: str, info: ObjectInfo, fd: int
    ) -> int:
        part_size = bucket.config.part_size
        ranges = [
            (start, min(start + part_size, info.size)) for start in range(0, info.size, part_size)
        ]
        written = 0
        limiter = trio.CapacityLimiter(bucket.config.concurrency)

        async def fetch(start: int, end: int) -> None:
            nonlocal written
            headers = {"Range": f"bytes={start}-{end - 1}"}
            if info.etag:
                headers["If-Match"] = info.etag  # the object must not change mid-download
            async with limiter, bucket.limiter:
                offset = start
                try:
                    async with bucket.transport.stream(
                        "GetObject", "GET", bucket.config.bucket, key, headers=headers
                    ) as response:
                        async for chunk in response.aiter_raw(WRITE_CHUNK):
                            if offset + len(chunk) > end:
                                raise RPCError(
                                    ErrorCode.S3_OPERATION_FAILED,
                                    "GetObject sent more bytes than the range asked for",
                                    f"range {start}-{end - 1}",
                                )
                            await _pwrite(fd, chunk, offset)
                            offset += len(chunk)
                except S3Error as exc:
                    raise map_s3_error(exc, bucket.name, pathname) from None
                except httpx.HTTPError as exc:
                    raise RPCError(
                        ErrorCode.S3_OPERATION_FAILED,
                        f"GetObject failed while reading the body: {type(exc).__name__}",
                        f"bucket: {bucket.name}, pathname: {pathname}",
                    ) from None
                written += offset - start

        with first_error():
            async with trio.open_nursery() as nursery:
                for start, end in ranges:
                    nursery.start_soon(fetch, start, end)
        return written


# -- chunked uploads ---------------------------------------------------------


@dataclass(slots=True)
class UploadSession:
    """One chunked upload: bytes buffered until a part is full, parts fed to a task."""

    upload_id: str
    bucket: Bucket
    key: str
    pathname: str
    headers: dict[str, str]
    received: int = 0
    buffer: bytearray = field(default_factory=bytearray)
    last_activity: float = 0.0
    lock: trio.Lock = field(default_factory=trio.Lock)
    # Set once the first full part exists and the multipart upload runs.
    parts_send: trio.MemorySendChannel[bytes] | None = None
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    result: CompletedUpload | None = None
    error: BaseException | None = None
    closed: bool = False


class UploadSessions:
    """The open chunked uploads; run :meth:`run` in a nursery that outlives the calls."""

    def __init__(self, storage: Storage, idle_timeout: float) -> None:
        self.storage = storage
        self.idle_timeout = idle_timeout
        self._sessions: dict[str, UploadSession] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def open_count(self) -> int:
        return len(self._sessions)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own every session's upload task and expire idle sessions.

        Cancelling ``run`` aborts every open upload on the service.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._expire_idle)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    for session in list(self._sessions.values()):
                        await self._abort(session, "server stopping")

    async def _expire_idle(self) -> None:
        interval = max(0.05, min(self.idle_timeout / 4, 30.0))
        while True:
            await trio.sleep(interval)
            deadline = trio.current_time() - self.idle_timeout
            for session in list(self._sessions.values()):
                if session.last_activity < deadline and not session.lock.locked():
                    log.info(
                        "event=upload_expired upload_id=%s bucket=%s key=%s",
                        session.upload_id,
                        session.bucket.name,
                        session.key,
                    )
                    await self._abort(session, "idle timeout")

    async def start(
        self,
        bucket_name: str,
        pathname: str,
        visibility: str,
        metadata: Mapping[str, str],
        content_type: str,
    ) -> str:
        bucket, key = self.storage.resolve(bucket_name, pathname)
        headers = {"Content-Type": content_type or content_type_for(pathname)}
        headers.update(metadata_headers(metadata))
        headers.update(await self.storage.acl_headers(bucket, visibility))
        upload_id = secrets.token_urlsafe(18)
        session = UploadSession(upload_id, bucket, key, pathname, headers)
        session.last_activity = trio.current_time()
        self._sessions[upload_id] = session
        return upload_id

    def _session(self, upload_id: str) -> UploadSession:
        session = self._sessions.get(upload_id)
        if session is None:
            raise RPCError(
                ErrorCode.UPLOAD_NOT_FOUND,
                "no open upload has this id (unknown, finished, aborted or expired)",
                f"upload_id: {upload_id}",
            )
        return session

    async def chunk(self, upload_id: str, content: bytes) -> int:
        session = self._session(upload_id)
        async with session.lock:
            self._check_open(session)
            session.last_activity = trio.current_time()
            session.buffer += content
            session.received += len(content)
            part_size = session.bucket.config.part_size
            try:
                # Keep a remainder so UploadFinish always has a last part to send.
                while len(session.buffer) > part_size:
                    part = bytes(session.buffer[:part_size])
                    del session.buffer[:part_size]
                    await self._send_part(session, part)
            except BaseException:
                if session.error is None:
                    # Interrupted mid-chunk (the caller went away): the upload's
                    # content is now unknown, so it cannot be finished.
                    await self._abort(session, "chunk interrupted")
                raise
            session.last_activity = trio.current_time()
            return session.received

    async def _send_part(self, session: UploadSession, part: bytes) -> None:
        if session.parts_send is None:
            session.parts_send = await self._start_upload_task(session)
        try:
            await session.parts_send.send(part)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await session.done.wait()
            raise self._failure(session) from None

    async def _start_upload_task(self, session: UploadSession) -> trio.MemorySendChannel[bytes]:
        assert self._nursery is not None, "UploadSessions.run is not running"
        send, receive = trio.open_memory_channel[bytes](0)

        async def upload() -> None:
            bucket = session.bucket
            target = self.storage.multipart_target(bucket, session.key, session.headers)
            with session.cancel_scope:
                try:
                    async with receive:
                        session.result = await upload_multipart(
                            target, receive, concurrency=bucket.config.concurrency
                        )
                except Exception as exc:
                    session.error = exc
            if session.cancel_scope.cancelled_caught and session.error is None:
                session.error = RPCError(
                    ErrorCode.UPLOAD_NOT_FOUND,
                    "the upload was aborted",
                    f"upload_id: {session.upload_id}",
                )
            session.done.set()

        self._nursery.start_soon(upload)
        return send

    def _check_open(self, session: UploadSession) -> None:
        if session.error is not None:
            raise self._failure(session)
        if session.closed:
            raise RPCError(
                ErrorCode.UPLOAD_NOT_FOUND,
                "the upload is finished or aborted",
                f"upload_id: {session.upload_id}",
            )

    def _failure(self, session: UploadSession) -> RPCError:
        self._sessions.pop(session.upload_id, None)
        error = session.error
        if isinstance(error, RPCError):
            return error
        if isinstance(error, S3Error):
            return map_s3_error(error, session.bucket.name, session.pathname)
        return RPCError(
            ErrorCode.S3_OPERATION_FAILED,
            f"the upload failed: {error!r}",
            f"upload_id: {session.upload_id}",
        )

    async def finish(self, upload_id: str) -> tuple[str, ObjectInfo]:
        """Send the last part and complete; answers the pathname and what was written."""
        session = self._session(upload_id)
        async with session.lock:
            self._check_open(session)
            session.closed = True
            try:
                return session.pathname, await self._finish(session)
            finally:
                self._sessions.pop(upload_id, None)

    async def _finish(self, session: UploadSession) -> ObjectInfo:
        content_type = session.headers["Content-Type"]
        if session.parts_send is None:
            # Never reached a full part: one PutObject, no multipart upload at all.
            response = await self.storage.request(
                session.bucket,
                "PutObject",
                "PUT",
                session.key,
                session.pathname,
                headers=session.headers,
                body=bytes(session.buffer),
            )
            return ObjectInfo(
                size=session.received,
                last_modified=http_date(response.headers.get("date")) or int(time.time()),
                mime_type=content_type,
                etag=response.headers.get("etag", ""),
            )
        try:
            if session.buffer:
                await self._send_part(session, bytes(session.buffer))
                session.buffer.clear()
            await session.parts_send.aclose()
            await session.done.wait()
        except BaseException:
            session.cancel_scope.cancel()
            raise
        if session.error is not None or session.result is None:
            raise self._failure(session)
        return ObjectInfo(
            size=session.result.size,
            last_modified=int(time.time()),
            mime_type=content_type,
            etag=session.result.etag,
        )

    async def abort(self, upload_id: str) -> None:
        session = self._session(upload_id)
        await self._abort(session, "requested")

    async def _abort(self, session: UploadSession, reason: str) -> None:
        """Cancel the session's upload task (which aborts the multipart upload) and forget it."""
        session.closed = True
        self._sessions.pop(session.upload_id, None)
        session.cancel_scope.cancel()
        if session.parts_send is not None:
            await session.done.wait()
        log.info("event=upload_closed upload_id=%s reason=%s", session.upload_id, reason)
