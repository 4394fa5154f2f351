"""One multipart upload: a coordinator, its part tasks, and the abort that always runs.

The coordinator creates the upload, then runs a nursery in which a producer
takes parts from the caller's source and hands them over an unbuffered
channel to ``concurrency`` part tasks. Memory is therefore bounded by the
parts in flight plus the one being produced. Any failure or cancellation
(a part failing after its retries, the caller's connection closing, shutdown)
cancels the sibling parts through the nursery and aborts the upload on the
service in a shielded scope, so nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import string
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from trio_s3rpc import progress
from trio_s3rpc.budget import current_hold
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.s3.limits import MAX_PARTS
from trio_s3rpc.s3.transport import BodyFactory, S3Error, S3Response, S3Transport
from trio_s3rpc.trioutil import first_error

log = logging.getLogger("trio_s3rpc.s3")

ABORT_TIMEOUT = 30.0


@dataclass(slots=True, frozen=True)
class CompletedUpload:
    etag: str
    size: int
    parts: int


@dataclass(slots=True, frozen=True)
class BusyUploads:
    """The multipart uploads a process works on, which the stale-upload reaper spares:
    by id, and by (bucket, key) while their CreateMultipartUpload is unanswered (the
    service may list such an upload before its id has reached the process)."""

    upload_ids: frozenset[str] = frozenset()
    creating: frozenset[tuple[str, str]] = frozenset()

    def __or__(self, other: BusyUploads) -> BusyUploads:
        return BusyUploads(self.upload_ids | other.upload_ids, self.creating | other.creating)

    def spares(self, bucket: str, key: str, upload_id: str) -> bool:
        return upload_id in self.upload_ids or (bucket, key) in self.creating


class UploadBook:
    """The bookkeeping of this process's multipart uploads, shared by every target.

    ``in_progress`` holds the upload ids being worked on (the stale-upload
    reaper and a resuming WriteFile leave them alone): from the answer of
    CreateMultipartUpload until the upload is finished, aborted or handed over
    to a chunked upload's session. Before that answer the service may already
    list the upload, so its key is marked :meth:`creating` meanwhile. An abort
    that failed (the service is down) is queued in :attr:`failed_aborts` for
    whoever retries aborts (the janitor); :attr:`pending_aborts` counts those
    queued or being retried until :meth:`abort_settled` is called for each.
    """

    def __init__(self) -> None:
        self.in_progress: set[str] = set()
        self._creating: Counter[tuple[str, str]] = Counter()
        self.pending_aborts = 0
        send, receive = trio.open_memory_channel[tuple[MultipartTarget, str]](math.inf)
        self._send = send
        self.failed_aborts: trio.MemoryReceiveChannel[tuple[MultipartTarget, str]] = receive

    @contextlib.contextmanager
    def creating(self, bucket: str, key: str) -> Iterator[None]:
        """Mark ``key`` as having an upload whose id is not known yet, while the body
        runs; the body puts the id in :attr:`in_progress` before it ends, with no
        checkpoint between, so the upload is never unmarked and unbooked at once."""
        place = (bucket, key)
        self._creating[place] += 1
        try:
            yield
        finally:
            self._creating[place] -= 1
            if not self._creating[place]:
                del self._creating[place]

    def being_created(self) -> set[tuple[str, str]]:
        """The (bucket, key) of every upload :meth:`creating` now."""
        return set(self._creating)

    def busy(self) -> BusyUploads:
        """The uploads in progress and those being created, read with no checkpoint
        between: an id leaves the keys being created only once it is in progress."""
        return BusyUploads(frozenset(self.in_progress), frozenset(self._creating))

    def abort_failed(self, target: MultipartTarget, upload_id: str) -> None:
        self.pending_aborts += 1
        self._send.send_nowait((target, upload_id))

    def abort_settled(self) -> None:
        self.pending_aborts -= 1


@dataclass(slots=True)
class MultipartTarget:
    """Where an upload goes, how its requests are made, and whose books it is kept in."""

    transport: S3Transport
    bucket: str
    key: str
    limiter: trio.CapacityLimiter
    create_headers: Mapping[str, str]
    book: UploadBook | None = None

    async def request(
        self,
        operation: str,
        method: str,
        query: Mapping[str, str],
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | BodyFactory = b"",
        content_length: int | None = None,
    ) -> S3Response:
        """One request about this upload's key, under the bucket's limiter."""
        async with self.limiter:
            return await self.transport.request(
                operation,
                method,
                self.bucket,
                self.key,
                query=query,
                headers=headers,
                body=body,
                content_length=content_length,
            )


T = TypeVar("T")


async def create_upload(target: MultipartTarget) -> str:
    """Create the upload and answer its id, which is in the book's ``in_progress``
    from the answer on; the caller's :func:`finish_multipart` or
    :func:`abort_upload` takes it out (see :class:`UploadBook`).

    A call cancelled while CreateMultipartUpload is in flight would leave an
    upload on the service that nobody can name, so the request, once sent,
    runs shielded (for at most ``ABORT_TIMEOUT``), and an upload created for
    a call cancelled meanwhile is aborted before the cancellation goes on.
    """
    book = target.book
    marked = book.creating(target.bucket, target.key) if book is not None else None
    with marked or contextlib.nullcontext():
        async with target.limiter:
            with trio.CancelScope(shield=True), trio.move_on_after(ABORT_TIMEOUT) as scope:
                response = await target.transport.request(
                    "CreateMultipartUpload",
                    "POST",
                    target.bucket,
                    target.key,
                    query={"uploads": ""},
                    headers=target.create_headers,
                    idempotent=False,
                )
        if scope.cancelled_caught:
            raise S3Error(
                "CreateMultipartUpload", 0, "Timeout", f"no answer within {ABORT_TIMEOUT:g} s"
            )
        upload_id = s3xml.parse_initiate_multipart(response.content)
        if book is not None:
            book.in_progress.add(upload_id)
    try:
        await trio.lowlevel.checkpoint_if_cancelled()
    except trio.Cancelled:
        await abort_upload(target, upload_id)
        raise
    return upload_id


async def upload_part(
    target: MultipartTarget,
    upload_id: str,
    number: int,
    data: bytes | BodyFactory,
    *,
    content_length: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """Send one part and return its ETag (re-sending a part number is safe).

    ``data`` is the part's bytes, or a :data:`BodyFactory` of its pieces
    with their ``content_length`` (no copy of them is made into one).
    """
    response = await target.request(
        "UploadPart",
        "PUT",
        {"partNumber": str(number), "uploadId": upload_id},
        headers=headers,
        body=data,
        content_length=content_length,
    )
    etag = str(response.headers.get("etag", ""))
    if not etag:
        raise S3Error("UploadPart", response.status, "MalformedResponse", "answer had no ETag")
    return etag


async def complete_upload(target: MultipartTarget, upload_id: str, etags: Mapping[int, str]) -> str:
    body = s3xml.build_complete_multipart(sorted(etags.items()))
    response = await target.request(
        "CompleteMultipartUpload",
        "POST",
        {"uploadId": upload_id},
        headers={"Content-Type": "application/xml"},
        body=body,
    )
    # S3 may answer 200 and still fail the completion in the body.
    etag = s3xml.parse_complete_multipart(response.content)
    if not etag:
        etag = await _etag_after_complete(target, etags)
    return etag


async def _etag_after_complete(target: MultipartTarget, etags: Mapping[int, str]) -> str:
    """The ETag of an upload whose completion answered an empty ``<ETag>`` (Ceph RGW 16).

    Learned from a HeadObject. Another write to the key between the completion and the
    HEAD would answer that write's ETag, so where the parts' ETags are MD5s the upload's
    own ETag is computed as S3 and RGW compute it, and answered when the HEAD disagrees:
    a later request conditional on it (the checksum's self-copy) then leaves the other
    object alone instead of taking it for this upload.
    """
    expected = multipart_etag(etags)
    response = await target.request("HeadObject", "HEAD", {})
    found = str(response.headers.get("etag", ""))
    if found and (expected is None or found == expected):
        return found
    if expected is None:
        raise S3Error(
            "CompleteMultipartUpload", 200, "MalformedResponse", "answer and HEAD had no ETag"
        )
    log.warning(
        "event=complete_etag_differs bucket=%s key=%r expected=%s head=%s",
        target.bucket,
        target.key,
        expected,
        found,
    )
    return expected


def multipart_etag(etags: Mapping[int, str]) -> str | None:
    """The ETag S3 gives the object of a multipart upload with these part ETags: the MD5
    of the parts' MD5s, ``-`` and the part count; None when a part ETag is not an MD5
    (encrypted uploads on AWS, services of their own scheme)."""
    digests = []
    for _, etag in sorted(etags.items()):
        hex_digest = etag.strip('"')
        if len(hex_digest) != 32 or not all(c in string.hexdigits for c in hex_digest):
            return None
        digests.append(bytes.fromhex(hex_digest))
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


async def send_abort(
    target: MultipartTarget, upload_id: str, *, raise_errors: bool = True
) -> S3Response:
    """One AbortMultipartUpload (with the transport's retries). An upload already gone
    (404, ``NoSuchUpload``) counts as aborted; any other failure raises S3Error, or with
    ``raise_errors=False`` is the answer's ``error``."""
    return await target.transport.request(
        "AbortMultipartUpload",
        "DELETE",
        target.bucket,
        target.key,
        query={"uploadId": upload_id},
        ok_statuses=(200, 204, 404),
        raise_errors=raise_errors,
    )


async def abort_upload(target: MultipartTarget, upload_id: str) -> None:
    """Abort the upload; runs shielded with its own deadline and never raises.

    An abort that fails is queued in ``target.book`` to be retried in the
    background, so the failing call is not held up by a dead service.
    """
    error = f"no answer within {ABORT_TIMEOUT:g} s"
    with trio.CancelScope(shield=True), trio.move_on_after(ABORT_TIMEOUT):
        answer = await send_abort(target, upload_id, raise_errors=False)
        error = "" if answer.error is None else str(answer.error)
    if target.book is not None:
        target.book.in_progress.discard(upload_id)
    if not error:
        log.info("event=upload_aborted bucket=%s key=%s", target.bucket, target.key)
        return
    log.error(
        "event=abort_failed bucket=%s key=%s upload_id=%s error=%r retry=%s",
        target.bucket,
        target.key,
        upload_id,
        error,
        "background" if target.book else "none",
    )
    if target.book is not None:
        target.book.abort_failed(target, upload_id)


PartSender = Callable[[str, int, T], Awaitable[tuple[str, int]]]


def bytes_part_sender(target: MultipartTarget) -> PartSender[bytes]:
    """Parts given as bytes, sent with UploadPart."""

    async def send(upload_id: str, number: int, data: bytes) -> tuple[str, int]:
        return await upload_part(target, upload_id, number, data), len(data)

    return send


async def upload_multipart(
    target: MultipartTarget,
    parts: AsyncIterable[T],
    *,
    concurrency: int,
    send_part: PartSender[T] | None = None,
    before_complete: Callable[[], None] | None = None,
    part_memory: int = 0,
) -> CompletedUpload:
    """Upload every part the source yields, in order, with ``concurrency`` in flight.

    ``send_part`` sends one part and answers its ETag and size; by default a
    part is bytes sent with UploadPart. ``before_complete`` runs once every
    part is sent; raising there (a checksum that does not match) aborts the
    upload instead of completing it. Completed or aborted, never left open:
    any exception or cancellation aborts the upload before it propagates.
    """
    upload_id = await create_upload(target)
    return await finish_multipart(
        target,
        upload_id,
        _numbered(parts),
        concurrency=concurrency,
        send_part=send_part,
        before_complete=before_complete,
        part_memory=part_memory,
    )


async def _numbered(parts: AsyncIterable[T]) -> AsyncIterator[tuple[int, T]]:
    number = 0
    async for part in parts:
        number += 1
        if number > MAX_PARTS:
            raise ValueError(f"more than {MAX_PARTS} parts: raise part_size to upload this much")
        yield number, part


async def finish_multipart(
    target: MultipartTarget,
    upload_id: str,
    parts: AsyncIterable[tuple[int, T]],
    *,
    concurrency: int,
    existing: Mapping[int, tuple[str, int]] | None = None,
    send_part: PartSender[T] | None = None,
    keep_on_failure: bool = False,
    before_complete: Callable[[], None] | None = None,
    part_memory: int = 0,
) -> CompletedUpload:
    """Send the numbered parts of an upload that exists, then complete it.

    ``existing`` holds parts already on the service (number -> ETag, size),
    which are reused, not sent. On cancellation the upload is aborted; on any
    other failure too, unless ``keep_on_failure`` (a resumable WriteFile keeps
    its parts for the next attempt).
    """
    sender: PartSender[Any] = send_part or bytes_part_sender(target)
    if target.book is not None:
        target.book.in_progress.add(upload_id)
    try:
        etags, size = await _send_parts(upload_id, parts, concurrency, sender, part_memory)
        for number, (etag, part_size) in (existing or {}).items():
            etags[number] = etag
            size += part_size
        if not etags:
            raise ValueError("a multipart upload needs at least one part")
        if before_complete is not None:
            before_complete()
        etag = await complete_upload(target, upload_id, etags)
    except trio.Cancelled:
        await abort_upload(target, upload_id)
        raise
    except BaseException:
        if not keep_on_failure:
            await abort_upload(target, upload_id)
        raise
    finally:
        if target.book is not None:
            target.book.in_progress.discard(upload_id)
    return CompletedUpload(etag=etag, size=size, parts=len(etags))


async def _send_parts(
    upload_id: str,
    parts: AsyncIterable[tuple[int, T]],
    concurrency: int,
    send_part: PartSender[T],
    part_memory: int = 0,
) -> tuple[dict[int, str], int]:
    """``part_memory``: the bytes one part holds until it is sent, taken from the
    call's memory budget before the part is made (read, or fetched by the sender)."""
    etags: dict[int, str] = {}
    total = 0
    send_channel, receive_channel = trio.open_memory_channel[tuple[int, T]](0)
    tracker = progress.current()
    hold = current_hold.get() if part_memory else None

    async def part_task(receive: trio.MemoryReceiveChannel[tuple[int, T]]) -> None:
        nonlocal total
        async with receive:
            async for number, part in receive:
                etags[number], size = await send_part(upload_id, number, part)
                del part
                if hold is not None:
                    hold.give_back(part_memory)
                total += size
                tracker.advance(size, 1)

    with first_error():
        async with trio.open_nursery() as nursery:
            async with receive_channel:
                for _ in range(concurrency):
                    nursery.start_soon(part_task, receive_channel.clone())
            async with send_channel:
                iterator = aiter(parts)
                while True:
                    if hold is not None:
                        # Waits while the budget is spent: parts in flight free it.
                        await hold.take(part_memory, "a part of this upload")
                    try:
                        numbered = await anext(iterator)
                    except StopAsyncIteration:
                        if hold is not None:
                            hold.give_back(part_memory)
                        break
                    await send_channel.send(numbered)
    return etags, total


def copy_part_sender(target: MultipartTarget, copy_source: str) -> PartSender[tuple[int, int]]:
    """Parts given as byte ranges ``(start, end)`` of ``copy_source``, sent with UploadPartCopy."""

    async def send(upload_id: str, number: int, span: tuple[int, int]) -> tuple[str, int]:
        start, end = span
        response = await target.request(
            "UploadPartCopy",
            "PUT",
            {"partNumber": str(number), "uploadId": upload_id},
            headers={
                "x-amz-copy-source": copy_source,
                "x-amz-copy-source-range": f"bytes={start}-{end - 1}",
            },
        )
        etag, _ = s3xml.parse_copy_result(response.content, "UploadPartCopy")
        return etag, end - start

    return send


async def list_uploads(
    transport: S3Transport, bucket: str, prefix: str, limiter: trio.CapacityLimiter
) -> list[s3xml.UploadEntry]:
    """Every unfinished multipart upload under ``prefix`` (all pages)."""
    uploads: list[s3xml.UploadEntry] = []
    query = {"uploads": "", "prefix": prefix}
    while True:
        async with limiter:
            response = await transport.request(
                "ListMultipartUploads", "GET", bucket, None, query=query
            )
        page = s3xml.parse_list_multipart_uploads(response.content)
        uploads.extend(page.uploads)
        if not page.is_truncated or not (page.next_key_marker or page.next_upload_id_marker):
            return uploads
        query = {
            "uploads": "",
            "prefix": prefix,
            "key-marker": page.next_key_marker,
            "upload-id-marker": page.next_upload_id_marker,
        }


async def list_parts(target: MultipartTarget, upload_id: str) -> list[s3xml.PartEntry]:
    """The parts the service holds for an upload, in part-number order (all pages)."""
    parts: list[s3xml.PartEntry] = []
    query = {"uploadId": upload_id}
    while True:
        response = await target.request("ListParts", "GET", query)
        page = s3xml.parse_list_parts(response.content)
        parts.extend(page.parts)
        if not page.is_truncated or not page.next_part_number_marker:
            return sorted(parts, key=lambda part: part.part_number)
        query = {"uploadId": upload_id, "part-number-marker": str(page.next_part_number_marker)}
