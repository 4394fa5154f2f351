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

Local paths are opened by handle beneath ``s3.local_roots`` (``localpaths.py``):
what was checked is what is read or written, whatever the caller renames
meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace

import trio

from trio_s3rpc import callers, checksums, progress
from trio_s3rpc.callers import Caller
from trio_s3rpc.config import DEFAULT_LOCAL_FILE_MODE, LOCAL_FILES
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3 import multipart
from trio_s3rpc.s3.limits import MAX_PARTS
from trio_s3rpc.s3.multipart import CompletedUpload, MultipartTarget
from trio_s3rpc.s3.parts import PartPlan, plan_parts
from trio_s3rpc.sniff import SNIFF_BYTES
from trio_s3rpc.storage import copies, objects, ranges, resumable
from trio_s3rpc.storage.buckets import ObjectRef
from trio_s3rpc.storage.localpaths import PART_SUFFIX, Destination, LocalRoots, local_error
from trio_s3rpc.storage.records import NewObject, ObjectInfo, verify_checksum
from trio_s3rpc.trioutil import first_error

log = logging.getLogger("trio_s3rpc.transfers")


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _create_temporary(dir_fd: int, name: str, size: int) -> int:
    """A new file only this server's user can read (0600 less the umask), ``size`` long."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        os.unlink(name, dir_fd=dir_fd)
        raise
    return fd


def _settle(fd: int, owner: tuple[int, int] | None, mode: int | None) -> None:
    """Give the finished file its owner (where this server may set it: as root, or a
    group it is in) and permission bits, then fsync. Set-user-ID and set-group-ID
    bits are never given to bytes a caller chose."""
    if owner is not None and owner != (os.geteuid(), os.getegid()):
        with contextlib.suppress(PermissionError):
            os.fchown(fd, *owner)
    if mode is not None:
        os.fchmod(fd, mode)
    os.fsync(fd)


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

    def __init__(
        self,
        local_roots: Sequence[str],
        local_file_mode: int = DEFAULT_LOCAL_FILE_MODE,
        local_files: str = LOCAL_FILES[0],
    ) -> None:
        self.paths = LocalRoots(local_roots)
        # (server, bucket, key) of the resumable WriteFiles this process is running.
        self._resuming: set[tuple[str, str, str]] = set()
        self.local_file_mode = local_file_mode
        # Under "peer", a unix-socket caller's files are opened with that user's rights.
        self.peer_rights = local_files == "peer"

    def _caller(self) -> Caller | None:
        return callers.current() if self.peer_rights else None

    def _asked_mode(self, mode: int | None) -> int | None:
        """The mode a ReadFile caller asks for, within ``s3.local_file_mode``."""
        if mode is None:
            return None
        if not 0 <= mode <= 0o777:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                "field 'mode' must be a file mode from 0 to 0777 (in PHP an octal literal: 0640)",
                f"mode: {mode}",
            )
        if mode & ~self.local_file_mode:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"field 'mode' {mode:04o} asks for permission bits that s3.local_file_mode "
                f"({self.local_file_mode:04o}) does not allow",
            )
        return mode

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
        fd, size = await trio.to_thread.run_sync(
            self.paths.open_source, source_path, self._caller()
        )
        try:
            with bucket.errors(ref.key):
                # A file S3 cannot hold is refused before any request is made.
                # A resumable upload keeps part 10,000 for its marker (resumable.py).
                max_parts = resumable.MAX_DATA_PARTS if resume else MAX_PARTS
                plan = plan_parts(size, bucket.config.part_size, max_parts)
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
            raise local_error(exc, "source_path", source_path) from None
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
        concurrency = ref.bucket.config.concurrency
        if not resume:
            upload_id = await multipart.create_upload(target)
            return await self._send_parts(
                target, upload_id, fd, spans, {}, part_checksums, concurrency=concurrency
            )
        place = (ref.bucket.server.name, target.bucket, target.key)
        if place in self._resuming:
            raise resumable.in_progress(target, "in this process", None)
        self._resuming.add(place)
        try:
            marker = await self._marker(ref, target, fd, plan)
            upload_id, existing = await self._resume_or_create(
                target, marker, fd, spans, part_checksums
            )
            tracker.advance(sum(size for _, size in existing.values()), len(existing))
            return await resumable.with_heartbeat(
                target,
                upload_id,
                marker,
                lambda stop_heartbeat: self._send_parts(
                    target,
                    upload_id,
                    fd,
                    spans,
                    existing,
                    part_checksums,
                    concurrency=concurrency,
                    keep=True,
                    before_complete=stop_heartbeat,
                ),
            )
        finally:
            self._resuming.discard(place)

    async def _send_parts(
        self,
        target: MultipartTarget,
        upload_id: str,
        fd: int,
        spans: Sequence[tuple[int, int, int]],
        existing: Mapping[int, tuple[str, int]],
        part_checksums: checksums.PartChecksums,
        *,
        concurrency: int,
        keep: bool = False,
        before_complete: Callable[[], None] | None = None,
    ) -> CompletedUpload:
        """Send every planned part not in ``existing`` and complete the upload; ``keep``
        leaves a failed upload's parts for a resume."""

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
            concurrency=concurrency,
            existing=existing,
            keep_on_failure=keep,
            before_complete=before_complete,
            # Each part is read from disk only once the call's memory budget holds it.
            part_memory=max((length for _, _, length in spans), default=0),
        )

    async def _marker(
        self, ref: ObjectRef, target: MultipartTarget, fd: int, plan: PartPlan
    ) -> resumable.Marker:
        """What makes an upload this WriteFile's: the destination and the source file."""

        def facts() -> tuple[int, str]:
            first = os.pread(fd, plan.part_size, 0)
            return os.fstat(fd).st_mtime_ns, _md5_hex(first)

        mtime_ns, first_md5 = await trio.to_thread.run_sync(facts)
        return resumable.Marker.of(
            ref.bucket.server.credentials.secret,
            target.bucket,
            target.key,
            plan.part_size,
            plan.size,
            mtime_ns,
            first_md5,
        )

    async def _resume_or_create(
        self,
        target: MultipartTarget,
        marker: resumable.Marker,
        fd: int,
        spans: Sequence[tuple[int, int, int]],
        part_checksums: checksums.PartChecksums,
    ) -> tuple[str, dict[int, tuple[str, int]]]:
        """This WriteFile's unfinished upload and the parts to reuse, or a new upload."""
        busy = target.book.in_progress if target.book else set()
        upload_id = await resumable.find(target, marker, busy)
        if upload_id is not None:
            await resumable.send_marker(target, upload_id, marker.live)
            reuse = await self._reusable_parts(target, upload_id, fd, spans, part_checksums)
            log.info(
                "event=upload_resumed key=%s upload_id=%s parts_reused=%d parts_total=%d",
                target.key,
                upload_id,
                len(reuse),
                len(spans),
            )
            return upload_id, reuse
        upload_id = await multipart.create_upload(target)
        try:
            await resumable.send_marker(target, upload_id, marker.live)
            await resumable.check_no_rival(target, upload_id, marker)
        except BaseException:
            await multipart.abort_upload(target, upload_id)
            raise
        return upload_id, {}

    async def _reusable_parts(
        self,
        target: MultipartTarget,
        upload_id: str,
        fd: int,
        spans: Sequence[tuple[int, int, int]],
        part_checksums: checksums.PartChecksums,
    ) -> dict[int, tuple[str, int]]:
        """The stored parts of the plan whose size and ETag (the MD5 of a part sent in
        one request) match the local bytes; any other part is sent again. A reused
        part's CRC32C goes into ``part_checksums`` as it is compared."""
        planned = {number: (offset, length) for number, offset, length in spans}
        reuse: dict[int, tuple[str, int]] = {}
        for part in await multipart.list_parts(target, upload_id):
            offset, length = planned.get(part.part_number, (0, -1))
            if part.size != length:
                continue  # the marker, or a part of another size
            data = await _pread(fd, length, offset)
            digest = await trio.to_thread.run_sync(_md5_hex, data)
            if part.etag.strip('"') == digest:
                reuse[part.part_number] = (part.etag, part.size)
                part_checksums.add(part.part_number, data)
        return reuse

    async def read_file(
        self, ref: ObjectRef, destination_path: str, mode: int | None = None
    ) -> ObjectInfo:
        """Download ``ref`` into ``destination_path``, replacing only that entry; the file
        gets ``mode``, or the replaced file's mode, or 0600 less the umask."""
        asked = self._asked_mode(mode)
        destination = await trio.to_thread.run_sync(
            self.paths.open_destination, destination_path, self._caller()
        )
        if asked is None and destination.existing is not None:
            asked = stat.S_IMODE(destination.existing.st_mode) & 0o777
        try:
            info = await objects.head(ref)
            await self._download_to(ref, info, destination, asked)
        finally:
            destination.close()
        return info

    async def _download_to(
        self, ref: ObjectRef, info: ObjectInfo, destination: Destination, mode: int | None
    ) -> None:
        """Fill a temporary file beside the destination and rename it into place, all
        relative to the destination's directory handle."""
        temporary = f".{destination.name}.{secrets.token_hex(6)}{PART_SUFFIX}"
        dir_fd = destination.dir_fd
        try:
            fd = await trio.to_thread.run_sync(_create_temporary, dir_fd, temporary, info.size)
        except OSError as exc:
            raise local_error(exc, "destination_path", destination.path) from None
        try:
            try:
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
                await trio.to_thread.run_sync(_settle, fd, destination.owner, mode)
            finally:
                os.close(fd)
            await trio.to_thread.run_sync(
                lambda: os.replace(
                    temporary, destination.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd
                )
            )
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=dir_fd)
            raise

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
