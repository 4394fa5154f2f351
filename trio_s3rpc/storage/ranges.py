"""Ranged reads: one byte range of an object, checksummed as it streams in.

ReadFile (into a local file) and a copy between services (into an upload
part) read objects as parallel ranges. Both take each range from here, with
``If-Match`` on the ETag the object had when the transfer began, so a
transfer never mixes the bytes of two versions, and with the range's CRC32C
computed on the way, for the caller to combine in order. A body cut short
(a reset connection, a read timeout) is resumed from the byte it reached,
with the same ``If-Match``, as s3transfer retries body errors: a range may be
asked for again :data:`BODY_RETRIES` times before the failure stands.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

import trio

from trio_s3rpc import checksums
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3.transport import HTTPResponse
from trio_s3rpc.storage.buckets import ObjectRef, StorageError
from trio_s3rpc.trioutil import first_error

log = logging.getLogger("trio_s3rpc.storage")

# Pieces of at least this size reach the sink (a thread hand-off per pwrite for ReadFile).
CHUNK = 2 * 1024 * 1024
# Times one range's body may break and be resumed (s3transfer makes 5 attempts in all).
BODY_RETRIES = 4

# Takes each chunk and its offset in the object, in order.
Sink = Callable[[bytes, int], Awaitable[None]]


class RangeRead:
    """Bytes ``start..end-1`` of an object as they arrive; ``crc`` and ``length`` so far.

    Iterate :meth:`chunks` once. A service that sends more than the range is
    refused, one that sends fewer too (with ``exact``, once the answer ends).
    With ``etag``, a changed object fails with the service's 412 (a
    :class:`StorageError`).
    """

    def __init__(self, ref: ObjectRef, start: int, end: int, etag: str) -> None:
        self.ref = ref
        self.start = start
        self.end = end
        self.etag = etag
        self.crc = 0
        self.length = 0

    async def chunks(self, *, exact: bool = False) -> AsyncGenerator[bytes, None]:
        """The range's bytes as they arrive; a broken body is resumed where it broke."""
        wanted = self.end - self.start
        retries = 0
        while True:
            answered = False
            try:
                async with self._get() as response:
                    answered = True
                    # Raw: the bytes as stored, even for objects saved with a Content-Encoding.
                    async for chunk in response.aiter_raw(CHUNK):
                        if self.length + len(chunk) > wanted:
                            raise self._wrong_size("more")
                        self.crc = checksums.crc32c(chunk, self.crc)
                        self.length += len(chunk)
                        yield chunk
                break
            except StorageError as exc:
                # Only a body that broke after a good head is resumed: a refusal
                # (412 included: the object changed) was the service's answer.
                if not answered or self.length == wanted or retries == BODY_RETRIES:
                    raise
                retries += 1
                log.warning(
                    "event=range_resumed bucket=%s pathname=%r offset=%d retry=%d error=%r",
                    self.ref.bucket.name,
                    self.ref.pathname,
                    self.start + self.length,
                    retries,
                    exc.wire_text(),
                )
        if exact and self.length != wanted:
            raise self._wrong_size("fewer")

    def _get(self) -> contextlib.AbstractAsyncContextManager[HTTPResponse]:
        """The GetObject of the bytes not received yet."""
        headers = {"Range": f"bytes={self.start + self.length}-{self.end - 1}"}
        if self.etag:
            headers["If-Match"] = self.etag
        return self.ref.bucket.stream("GetObject", "GET", self.ref.key, headers)

    def _wrong_size(self, which: str) -> RPCError:
        return RPCError(
            ErrorCode.S3_OPERATION_FAILED,
            f"GetObject sent {which} bytes than the range asked for",
            f"bucket: {self.ref.bucket.name}, pathname: {self.ref.pathname}, "
            f"range {self.start}-{self.end - 1}",
        )


async def fetch(ref: ObjectRef, start: int, end: int, etag: str, sink: Sink) -> tuple[int, int]:
    """GET bytes ``start..end-1`` into ``sink``; answers their CRC32C and how many arrived
    (fewer than asked is for the caller to judge: it knows what it expected)."""
    read = RangeRead(ref, start, end, etag)
    # The sink (a pwrite in a worker thread) takes each piece in a task of its
    # own while the next one arrives: reading waits for the sink only when a
    # piece is already waiting for it, so the connection keeps flowing.
    send, receive = trio.open_memory_channel[tuple[bytes, int]](0)
    with first_error():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, receive, sink)
            async with send, contextlib.aclosing(read.chunks()) as chunks:
                offset = start
                async for chunk in chunks:
                    await send.send((chunk, offset))
                    offset += len(chunk)
    return read.crc, read.length


async def _drain(receive: trio.MemoryReceiveChannel[tuple[bytes, int]], sink: Sink) -> None:
    async with receive:
        async for chunk, offset in receive:
            await sink(chunk, offset)
