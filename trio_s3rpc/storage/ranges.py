"""Ranged reads: one byte range of an object, checksummed as it streams in.

ReadFile (into a local file) and a copy between services (into an upload
part) read objects as parallel ranges. Both take each range from here, with
``If-Match`` on the ETag the object had when the transfer began, so a
transfer never mixes the bytes of two versions, and with the range's CRC32C
computed on the way, for the caller to combine in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from trio_s3rpc import checksums
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.storage.buckets import ObjectRef

# Pieces of at least this size reach the sink (a thread hand-off per pwrite for ReadFile).
CHUNK = 2 * 1024 * 1024

# Takes each chunk and its offset in the object, in order.
Sink = Callable[[bytes, int], Awaitable[None]]


async def fetch(ref: ObjectRef, start: int, end: int, etag: str, sink: Sink) -> tuple[int, int]:
    """GET bytes ``start..end-1`` into ``sink``; answers their CRC32C and how many arrived.

    A service that sends more than the range is refused; fewer is for the
    caller to judge (it knows what it expected). With ``etag``, a changed
    object fails with the service's 412 (a :class:`StorageError`).
    """
    headers = {"Range": f"bytes={start}-{end - 1}"}
    if etag:
        headers["If-Match"] = etag
    offset, crc = start, 0
    async with ref.bucket.stream("GetObject", "GET", ref.key, headers) as response:
        # Raw: the bytes as stored, even for objects saved with a Content-Encoding.
        async for chunk in response.aiter_raw(CHUNK):
            if offset + len(chunk) > end:
                raise RPCError(
                    ErrorCode.S3_OPERATION_FAILED,
                    "GetObject sent more bytes than the range asked for",
                    f"range {start}-{end - 1}",
                )
            crc = checksums.crc32c(chunk, crc)
            await sink(chunk, offset)
            offset += len(chunk)
    return crc, offset - start
