"""What a process holds of a chunked upload, and the checks that complete one.

A :class:`Session` is one process's part of an upload (see ``chunked.py``):
its part-aligned ``base``, the tail not yet a whole part, the parts in
flight and the CRC32C of each part it sent. At UploadFinish,
:func:`whole_upload` checks that the service holds every part of exactly
the size sent, and :func:`store_checksum` answers and stores the object's
CRC32C, reading back the parts another process sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import trio

from trio_s3rpc import checksums
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3.multipart import MultipartTarget
from trio_s3rpc.s3.xml import PartEntry
from trio_s3rpc.storage import copies
from trio_s3rpc.storage.buckets import ObjectRef
from trio_s3rpc.storage.records import ObjectInfo
from trio_s3rpc.storage.tokens import UploadToken

log = logging.getLogger("trio_s3rpc.uploads")


@dataclass(slots=True)
class Session:
    """What this process holds of one upload."""

    token: UploadToken
    ref: ObjectRef
    target: MultipartTarget
    parts_in_flight: trio.Semaphore
    # Part-aligned: every part below it is sent by this process or on the service.
    base: int
    buffer: bytearray = field(default_factory=bytearray)
    # The bytes of ``buffer`` counted in the process's memory budget.
    counted: int = 0
    lock: trio.Lock = field(default_factory=trio.Lock)
    last_activity: float = 0.0
    last_activity_wall: float = 0.0
    in_flight: int = 0
    idle: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None
    part_scopes: set[trio.CancelScope] = field(default_factory=set)
    # The CRC32C of each part this process sent, by part number.
    part_checksums: checksums.PartChecksums = field(default_factory=checksums.PartChecksums)

    @property
    def received(self) -> int:
        """The bytes this process can continue from."""
        return self.base + len(self.buffer)

    @property
    def next_part(self) -> int:
        return self.base // self.token.part_size + 1

    def touch(self) -> None:
        self.last_activity = trio.current_time()
        self.last_activity_wall = time.time()


@dataclass(slots=True, frozen=True)
class UploadStatus:
    committed_bytes: int
    parts: int


def committed_prefix(parts: Sequence[PartEntry], part_size: int) -> list[PartEntry]:
    """The parts 1..n the service holds whole, in order: what every instance agrees on."""
    by_number = {part.part_number: part for part in parts}
    prefix: list[PartEntry] = []
    while True:
        part = by_number.get(len(prefix) + 1)
        if part is None or part.size != part_size:
            return prefix
        prefix.append(part)


def resend_refusal(message: str, offset: int, pathname: str) -> RPCError:
    """A refusal a client acts on: it names the offset to resend from."""
    return RPCError(
        ErrorCode.INVALID_REQUEST,
        f"{message}; resend from offset {offset}",
        f"upload of {pathname}, resend_from: {offset}",
    )


def whole_upload(
    session: Session, parts: Sequence[PartEntry], last: int, size: int
) -> dict[int, str]:
    """The ETags of parts 1..``last`` if together they hold exactly ``size`` bytes.

    Otherwise the finish is refused, the session falls back to what the
    service holds whole, and the client resends from there.
    """
    part_size = session.token.part_size
    by_number = {part.part_number: part for part in parts}
    expected = [
        (n, part_size if n < last else size - (last - 1) * part_size) for n in range(1, last + 1)
    ]
    if all(n in by_number and by_number[n].size == length for n, length in expected):
        return {n: by_number[n].etag for n, _ in expected}
    committed = len(committed_prefix(parts, part_size)) * part_size
    session.base = min(session.base, committed)
    session.buffer.clear()
    raise resend_refusal(
        "the service does not hold every part of this upload", committed, session.token.pathname
    )


async def store_checksum(session: Session, written: ObjectInfo, last: int) -> ObjectInfo:
    """Answer and store the object's CRC32C: parts sent here as they went, the
    others read back from the object; none (logged) when that cannot be done."""
    headers = session.token.create_headers
    if headers is None:
        log.info("event=checksum_unknown pathname=%r reason=old_upload_id", session.token.pathname)
        return written
    known = session.part_checksums
    part_size = session.token.part_size
    missing = [n for n in range(1, last + 1) if not known.has(n)]
    try:
        for number in missing:
            start = (number - 1) * part_size
            end = min(start + part_size, written.size)
            known.add(number, await _read_range(session.ref, start, end, written.etag))
    except RPCError as exc:
        log.warning(
            "event=checksum_not_stored pathname=%r reason=read_back_failed error=%r",
            session.token.pathname,
            exc.wire_text(),
        )
        return written
    if missing:
        log.info(
            "event=checksum_read_back pathname=%r parts=%d",
            session.token.pathname,
            len(missing),
        )
    written = replace(written, checksum=checksums.format_checksum(known.whole()))
    return await copies.attach_checksum(session.ref, headers, written)


async def _read_range(ref: ObjectRef, start: int, end: int, etag: str) -> bytes:
    """Bytes ``[start, end)`` of the object, which must still be the one ``etag`` names."""
    headers = {"Range": f"bytes={start}-{end - 1}"}
    if etag:
        headers["If-Match"] = etag
    async with ref.bucket.stream("GetObject", "GET", ref.key, headers) as response:
        data = b"".join([chunk async for chunk in response.aiter_raw()])
    if len(data) != end - start:
        raise RPCError(
            ErrorCode.S3_OPERATION_FAILED,
            "GetObject answered a different number of bytes than the range asked for",
            f"range {start}-{end - 1}, got {len(data)}",
        )
    return data
