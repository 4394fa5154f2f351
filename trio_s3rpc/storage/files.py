"""Files of any size in bounded memory: WriteFile and ReadFile.

A PHP application hands over a local path instead of base64 content in one
frame, so memory here is bounded by the parts in flight, never by the
file's size:

- WriteFile reads each part from disk as it is sent; above ``part_size`` it
  is a multipart upload with ``concurrency`` parts in flight, in parts
  planned within S3's limits (``s3/parts.py``: the part size grows for files
  above ``part_size * 10,000`` bytes, and a file above 5 TiB is refused
  before any request).
- ReadFile downloads ``part_size`` ranges in parallel into a temporary file
  beside the destination, written at their offsets as the bytes stream in,
  and renames it into place only when every byte has arrived and the CRCs
  of the ranges, combined in order, match the object's stored checksum.

Local paths are confined to ``s3.local_roots`` after resolving symlinks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import trio

from trio_s3rpc import checksums, progress
from trio_s3rpc.errors import ErrorCode, RPCError, first_error
from trio_s3rpc.s3 import multipart
from trio_s3rpc.s3.multipart import CompletedUpload, MultipartTarget
from trio_s3rpc.s3.parts import PartPlan, plan_parts
from trio_s3rpc.sniff import SNIFF_BYTES
from trio_s3rpc.storage import copies, objects, ranges
from trio_s3rpc.storage.buckets import ObjectRef
from trio_s3rpc.storage.records import NewObject, ObjectInfo, verify_checksum

log = logging.getLogger("trio_s3rpc.transfers")


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


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


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


class Files:
    """WriteFile and ReadFile: objects to and from local files under ``local_roots``."""

    def __init__(self, local_roots: Sequence[str]) -> None:
        self.paths = LocalPaths(local_roots)

    async def write_file(
        self,
        ref: ObjectRef,
        source_path: str,
        new: NewObject,
        resume: bool = False,
    ) -> ObjectInfo:
        """Upload the local file ``source_path`` as ``ref``, created as ``new`` asks;
        ``resume`` continues an unfinished upload of the same file and part size."""
        bucket = ref.bucket
        path = self.paths.confine(source_path, "source_path")
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise _local_error(exc, "source_path", path) from None
        try:
            size = os.fstat(fd).st_size
            with bucket.errors(ref.key):
                # A file S3 cannot hold is refused before any request is made.
                plan = plan_parts(size, bucket.config.part_size)
            # Without a content type or a known extension, the file's first bytes decide.
            head = b"" if new.content_type else await _pread(fd, min(size, SNIFF_BYTES), 0)
            headers = await objects.new_object_headers(ref, new, head)
            tracker = progress.current()
            if size <= bucket.config.part_size:
                tracker.expect(size, 1)
                data = await _pread(fd, size, 0)
                written = await objects.put_object(ref, headers, data)
                tracker.advance(len(data), 1)
                return written
            part_checksums = checksums.PartChecksums()
            with bucket.errors(ref.key):
                done = await self._upload_from_fd(
                    ref, headers, fd, plan, resume, part_checksums=part_checksums
                )
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
        written = ObjectInfo.uploaded(done, headers)
        if part_checksums.length != done.size:
            # Some part's bytes went uncounted: storing a wrong checksum would
            # make every later read of a good object fail, so store none.
            log.error("event=checksum_incomplete pathname=%r", ref.pathname)
            return written
        written = replace(written, checksum=checksums.format_checksum(part_checksums.whole()))
        return await copies.attach_checksum(ref, headers, written)

    async def _upload_from_fd(
        self,
        ref: ObjectRef,
        headers: Mapping[str, str],
        fd: int,
        plan: PartPlan,
        resume: bool,
        *,
        part_checksums: checksums.PartChecksums,
    ) -> CompletedUpload:
        """Upload the file in the planned parts (call it inside the bucket's ``errors``);
        each part's CRC32C goes into ``part_checksums`` as it is read (reused parts'
        when they are compared), never in a second pass."""
        spans = list(plan.spans())
        target = ref.bucket.multipart(ref.key, headers)
        tracker = progress.current()
        # The total is known now: a TransferStatus during CreateMultipartUpload shows it.
        tracker.expect(plan.size, len(spans))
        found = await self._find_resumable(target, fd, spans, part_checksums) if resume else None
        upload_id, existing = found or (await multipart.create_upload(target), {})
        tracker.advance(sum(size for _, size in existing.values()), len(existing))

        async def parts() -> AsyncIterator[tuple[int, bytes]]:
            for number, offset, length in spans:
                if number not in existing:
                    data = await _pread(fd, length, offset)
                    part_checksums.add(number, data)
                    yield number, data
                    # The part in flight holds it; kept here, it would outlive its budget.
                    del data

        return await multipart.finish_multipart(
            target,
            upload_id,
            parts(),
            concurrency=ref.bucket.config.concurrency,
            existing=existing,
            keep_on_failure=resume,
            # Each part is read from disk only once the call's memory budget holds it.
            part_memory=plan.part_size,
        )

    async def _find_resumable(
        self,
        target: MultipartTarget,
        fd: int,
        spans: Sequence[tuple[int, int, int]],
        part_checksums: checksums.PartChecksums,
    ) -> tuple[str, dict[int, tuple[str, int]]] | None:
        """An unfinished upload of this key whose parts fit this file, and the parts to reuse.

        A listed part is reused when its size is the size its range must have
        and its ETag (the MD5 of a part sent in one request) matches the local
        bytes; any other part is sent again. Uploads this process is working on
        are left alone.
        """
        in_progress = target.book.in_progress if target.book else set()
        uploads = await multipart.list_uploads(
            target.transport, target.bucket, target.key, target.limiter
        )
        candidates = sorted(
            (u for u in uploads if u.key == target.key and u.upload_id not in in_progress),
            key=lambda u: u.initiated,
            reverse=True,
        )
        lengths = {number: length for number, _, length in spans}
        offsets = {number: offset for number, offset, _ in spans}
        for upload in candidates:
            listed = await multipart.list_parts(target, upload.upload_id)
            if any(lengths.get(p.part_number) != p.size for p in listed):
                continue  # sent with another part size or for another file
            reuse: dict[int, tuple[str, int]] = {}
            for part in listed:
                data = await _pread(fd, part.size, offsets[part.part_number])
                digest = await trio.to_thread.run_sync(_md5_hex, data)
                if part.etag.strip('"') == digest:
                    reuse[part.part_number] = (part.etag, part.size)
                    part_checksums.add(part.part_number, data)
            log.info(
                "event=upload_resumed key=%s upload_id=%s parts_reused=%d parts_total=%d",
                target.key,
                upload.upload_id,
                len(reuse),
                len(spans),
            )
            return upload.upload_id, reuse
        return None

    async def read_file(self, ref: ObjectRef, destination_path: str) -> ObjectInfo:
        destination = self._destination(destination_path)
        info = await objects.head(ref)
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
                range_checksums = checksums.PartChecksums()
                written = await self._download_into(ref, info, fd, range_checksums)
                if written != info.size:
                    raise RPCError(
                        ErrorCode.S3_OPERATION_FAILED,
                        "GetObject delivered a different number of bytes than the object has",
                        f"expected {info.size}, got {written}",
                    )
                if info.checksum:
                    # Ranges arrive in parallel: their CRCs are combined in order.
                    verify_checksum(
                        info.checksum, range_checksums.whole(), ref.bucket.name, ref.pathname
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
        self,
        ref: ObjectRef,
        info: ObjectInfo,
        fd: int,
        range_checksums: checksums.PartChecksums,
    ) -> int:
        """Fetch the object's ranges in parallel into ``fd``; answers the bytes written.

        ``concurrency`` tasks take the ranges in order, one at a time, so
        neither tasks nor ranges pile up for a large object (a 5 TiB one is
        a million 5 MiB ranges). Each range's CRC32C, computed as its bytes
        stream in, goes into ``range_checksums`` under the range's start offset.
        """
        part_size = ref.bucket.config.part_size
        starts = iter(range(0, info.size, part_size))  # shared: each start is taken once
        count = -(-info.size // part_size)
        written = 0
        tracker = progress.current()
        tracker.expect(info.size, count)

        async def write_at(chunk: bytes, offset: int) -> None:
            await _pwrite(fd, chunk, offset)
            tracker.advance(len(chunk))

        async def fetch_ranges() -> None:
            nonlocal written
            for start in starts:
                end = min(start + part_size, info.size)
                # If-Match: the object must not change mid-download.
                crc, length = await ranges.fetch(ref, start, end, info.etag, write_at)
                written += length
                range_checksums.add_value(start, crc, length)
                tracker.advance(0, 1)

        with first_error():
            async with trio.open_nursery() as nursery:
                for _ in range(min(ref.bucket.config.concurrency, count)):
                    nursery.start_soon(fetch_ranges)
        return written
