"""Copies between storage services: the bytes stream through this server, bounded and verified.

S3's CopyObject works only inside one service. When the source and the
destination are on different servers (or the service answers CopyObject
with ``NotImplemented``), :func:`copy` streams the object instead. The
destination's part plan (its ``part_size``, grown to fit S3's 10,000 parts)
cuts the source into ranges; ``concurrency`` part tasks each GET one range
from the source, conditional on the source's ETag (``If-Match``), and send
it as one UploadPart. The range's bytes are piped: a reader task hands each
1 MiB chunk as it arrives over a one-slot channel to the UploadPart, so GET
and PUT overlap and a part holds a chunk or two in memory (a retried
UploadPart reads its range again). Two cases buffer the part instead, at
most ``concurrency`` parts in memory whatever the object's size: under
``checksums: when_supported`` the part's CRC32C must precede its bytes in a
header, and a copy within one bucket (a service without CopyObject) would
ask one limiter for two tokens per part, which can deadlock.

Each range's CRC32C is computed as its bytes arrive, and the pieces,
combined in order, must match the checksum stored with the source before
the upload is completed. A mismatch, a source that changed, a failed part
or a cancellation aborts the upload, so nothing is left at the destination.
An object of one part takes one GET and one PutObject.

The destination gets the source's content type, standard headers and user
metadata (or the ``config`` that replaces it), the checksum (the source's,
or for a source written by something else the one computed on the way),
and the visibility and archival settings asked for or the destination
bucket's defaults.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass

import trio

from trio_s3rpc import checksums, progress
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3.multipart import upload_multipart, upload_part
from trio_s3rpc.s3.parts import PartPlan, plan_parts
from trio_s3rpc.storage import objects, ranges
from trio_s3rpc.storage.buckets import ObjectRef, StorageError
from trio_s3rpc.storage.records import NewObject, ObjectInfo, verify_checksum
from trio_s3rpc.trioutil import first_error


@dataclass(slots=True, frozen=True)
class StreamedCopy:
    """What arrived: the object, the headers it was created with, and whether the
    checksum in ``info`` is stored with it yet (a multipart copy of an object
    without one learns it only at the end; ``copies.attach_checksum`` stores it)."""

    info: ObjectInfo
    headers: Mapping[str, str]
    checksum_stored: bool


async def copy(source: ObjectRef, dest: ObjectRef, new: NewObject) -> StreamedCopy:
    """Stream ``source`` into ``dest``, created as ``new`` asks (see the module
    docstring); raises RPCError."""
    found = await objects.head(source)
    headers = await objects.copy_headers(dest, found, new)
    plan = _plan(dest, found.size)
    tracker = progress.current()
    tracker.expect(found.size, max(1, plan.parts))
    if plan.parts <= 1:
        chunks, crc = await _fetch(source, found, 0, found.size) if found.size else ([], 0)
        data = b"".join(chunks)
        _verify(source, found, crc)
        headers.pop(checksums.METADATA_HEADER, None)  # put_object stores the CRC it computes
        written = await objects.put_object(dest, headers, data)
        tracker.advance(len(data), 1)
        return StreamedCopy(written, headers, checksum_stored=True)
    pieces = checksums.PartChecksums()
    target = dest.bucket.multipart(dest.key, headers)

    def before_complete() -> None:
        if pieces.length != found.size:
            raise RPCError(
                ErrorCode.S3_OPERATION_FAILED,
                "the source delivered a different number of bytes than it has",
                f"expected {found.size}, got {pieces.length}",
            )
        _verify(source, found, pieces.whole())

    async def spans() -> AsyncIterator[tuple[int, int]]:
        for _, start, length in plan.spans():
            yield start, start + length

    checksum_header = dest.bucket.server.checksums == "when_supported"

    async def buffered(upload_id: str, number: int, span: tuple[int, int]) -> tuple[str, int]:
        start, end = span
        chunks, crc = await _fetch(source, found, start, end)
        pieces.add_value(start, crc, end - start)
        headers = {"x-amz-checksum-crc32c": checksums.header_value(crc)} if checksum_header else {}
        etag = await upload_part(
            target, upload_id, number, _replay(chunks), content_length=end - start, headers=headers
        )
        return etag, end - start

    async def piped(upload_id: str, number: int, span: tuple[int, int]) -> tuple[str, int]:
        start, end = span
        reads: list[_PipedRange] = []
        with _source_changed(source), first_error():
            async with trio.open_nursery() as nursery:

                def body() -> AsyncIterator[bytes]:
                    # Every attempt of the UploadPart (a retry too) reads the range anew.
                    for earlier in reads:
                        earlier.scope.cancel()
                    reads.append(_PipedRange(ranges.RangeRead(source, start, end, found.etag)))
                    return reads[-1].begin(nursery)

                etag = await upload_part(
                    target, upload_id, number, body, content_length=end - start
                )
                nursery.cancel_scope.cancel()
        last = reads[-1] if reads else None
        if last is None or last.read.length != end - start:
            raise RPCError(
                ErrorCode.S3_OPERATION_FAILED,
                "UploadPart completed before the range was read whole",
                f"range {start}-{end - 1}",
            )
        pieces.add_value(start, last.read.crc, end - start)
        return etag, end - start

    # The range's bytes go out as they arrive, unless the part's CRC32C must
    # precede them in a header (when_supported), or one limiter would be asked
    # for two tokens per part (a copy within one bucket), which can deadlock.
    send = piped
    if checksum_header or source.bucket.limiter is dest.bucket.limiter:
        send = buffered

    with dest.bucket.errors(dest.key):
        done = await upload_multipart(
            target,
            spans(),
            concurrency=dest.bucket.config.concurrency,
            send_part=send,
            before_complete=before_complete,
            # A buffered part holds its range until it is sent; a piped one, a chunk.
            part_memory=plan.part_size if send is buffered else 0,
        )
    checksum = found.checksum or checksums.format_checksum(pieces.whole())
    info = ObjectInfo.uploaded(done, headers, checksum)
    return StreamedCopy(info, headers, checksum_stored=bool(found.checksum))


def _plan(dest: ObjectRef, size: int) -> PartPlan:
    with dest.bucket.errors(dest.key):
        return plan_parts(size, dest.bucket.config.part_size)


async def _fetch(
    source: ObjectRef, found: ObjectInfo, start: int, end: int
) -> tuple[list[bytes], int]:
    """The bytes ``start..end`` of the source as it was when HEAD saw it, in the pieces
    they arrived in, and their CRC32C."""
    chunks: list[bytes] = []

    async def keep(chunk: bytes, offset: int) -> None:
        chunks.append(chunk)

    with _source_changed(source):
        crc, length = await ranges.fetch(source, start, end, found.etag, keep)
    if length != end - start:
        raise RPCError(
            ErrorCode.S3_OPERATION_FAILED,
            "GetObject delivered fewer bytes than the range asked for",
            f"range {start}-{end - 1}, got {length} bytes",
        )
    return chunks, crc


class _PipedRange:
    """One reading of a range in its own task, handed over a small channel to the
    UploadPart that sends it: at most a chunk or two in memory per part."""

    def __init__(self, read: ranges.RangeRead) -> None:
        self.read = read
        self.scope = trio.CancelScope()

    def begin(self, nursery: trio.Nursery) -> AsyncIterator[bytes]:
        send, receive = trio.open_memory_channel[bytes](1)
        nursery.start_soon(self._produce, send)
        return self._consume(receive)

    async def _produce(self, send: trio.MemorySendChannel[bytes]) -> None:
        with self.scope:
            async with send, contextlib.aclosing(self.read.chunks(exact=True)) as chunks:
                async for chunk in chunks:
                    try:
                        await send.send(chunk)
                    except trio.BrokenResourceError:
                        return  # the attempt this fed has failed; a retry reads anew

    async def _consume(self, receive: trio.MemoryReceiveChannel[bytes]) -> AsyncIterator[bytes]:
        async with receive:
            async for chunk in receive:
                yield chunk


def _replay(chunks: list[bytes]) -> Callable[[], AsyncIterator[bytes]]:
    """A body of pieces already in memory, sent without joining them into one."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return body


@contextlib.contextmanager
def _source_changed(source: ObjectRef) -> Iterator[None]:
    """A 412 on the source's If-Match: it was replaced or rewritten since the copy began."""
    try:
        yield
    except StorageError as exc:
        if exc.status != 412:
            raise
        raise RPCError(
            ErrorCode.S3_OPERATION_FAILED,
            "the source changed during the copy (its ETag no longer matches): the copy was stopped",
            f"bucket: {source.bucket.name}, pathname: {source.pathname}",
        ) from None


def _verify(source: ObjectRef, found: ObjectInfo, crc: int) -> None:
    if found.checksum:
        verify_checksum(found.checksum, crc, source.bucket.name, source.pathname)
