"""WriteFile ``resume``: proving an unfinished upload is this WriteFile's before adopting it.

S3 keeps no metadata of an unfinished upload that another request can read,
so a resumable WriteFile marks its upload with a part it never completes:
part 10,000 (the file is planned in at most 9,999 parts) holds an HMAC, keyed
by the bucket's server secret, of the bucket, the key, the part size and the
source's size, mtime and first part's MD5. ListParts shows that part's ETag
(the MD5 of its bytes) and LastModified, so a later WriteFile, on any worker
or instance with the same configuration, can check that an upload is a
resumable WriteFile of the same destination and the same file before it
touches it. A chunked upload (``s3.UploadStart``), another caller's upload,
or one of another file never carries the marker, and is never adopted.

A marker also says whether its transfer is alive: the WriteFile running
the upload sends it again every :data:`HEARTBEAT` seconds, and one that
fails sends the *released* marker instead. An upload whose live marker is
younger than :data:`LEASE` (by the service's clock) belongs to a running
transfer: a second WriteFile(resume) of the same pathname and file is then
refused, never mixed into it. Two that start at once each create an upload
and then look again: the one whose upload sorts first (initiated, then id)
goes on, the other aborts its own upload and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import trio

from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3 import multipart
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.s3.limits import MAX_PARTS
from trio_s3rpc.s3.multipart import MultipartTarget
from trio_s3rpc.storage.records import http_date
from trio_s3rpc.trioutil import first_error

log = logging.getLogger("trio_s3rpc.transfers")
T = TypeVar("T")

MARKER_PART = MAX_PARTS
MAX_DATA_PARTS = MARKER_PART - 1
HEARTBEAT = 2.0
LEASE = 6  # seconds, as LastModified counts them: three heartbeats missed


@dataclass(slots=True, frozen=True)
class Marker:
    """The two contents of an upload's marker part, and their ETags."""

    live: bytes
    released: bytes

    @classmethod
    def of(
        cls,
        secret: str,
        bucket: str,
        key: str,
        part_size: int,
        size: int,
        mtime_ns: int,
        first_part_md5: str,
    ) -> Marker:
        signing_key = hashlib.sha256(b"trio-s3rpc writefile resume\x00" + secret.encode()).digest()
        facts = "\n".join(
            ["v1", bucket, key, str(part_size), str(size), str(mtime_ns), first_part_md5]
        )

        def sign(state: str) -> bytes:
            message = (facts + "\n" + state).encode()
            return hmac.new(signing_key, message, hashlib.sha256).hexdigest().encode()

        return cls(sign("live"), sign("released"))

    def state(self, part: s3xml.PartEntry) -> str | None:
        """``live`` or ``released`` when ``part`` is this marker; None otherwise."""
        etag = part.etag.strip('"')
        for state, content in (("live", self.live), ("released", self.released)):
            if part.size == len(content) and etag == _md5(content):
                return state
        return None


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass(slots=True, frozen=True)
class MarkerSeen:
    """An upload's marker part as listed, and the service's clock at the listing."""

    state: str | None  # None: no marker of this WriteFile's (not its upload)
    age: int  # seconds since the marker was last sent


async def read_marker(target: MultipartTarget, upload_id: str, marker: Marker) -> MarkerSeen:
    """Whether ``upload_id`` carries ``marker``, and how long ago it was sent."""
    response = await target.request(
        "ListParts",
        "GET",
        {"uploadId": upload_id, "part-number-marker": str(MARKER_PART - 1), "max-parts": "1"},
    )
    now = http_date(response.headers.get("date"))
    for part in s3xml.parse_list_parts(response.content).parts:
        if part.part_number == MARKER_PART:
            return MarkerSeen(marker.state(part), max(0, now - part.last_modified))
    return MarkerSeen(None, 0)


def in_progress(target: MultipartTarget, upload_id: str, seen: MarkerSeen | None) -> RPCError:
    """The refusal of a WriteFile(resume) whose upload another transfer is running."""
    when = "" if seen is None else f", its marker sent {seen.age} s ago"
    return RPCError(
        ErrorCode.INVALID_REQUEST,
        "another WriteFile with resume of this pathname is in progress; retry when it has ended",
        f"key: {target.key}, upload_id: {upload_id}{when}",
    )


async def send_marker(target: MultipartTarget, upload_id: str, content: bytes) -> None:
    await multipart.upload_part(target, upload_id, MARKER_PART, content)


async def find(target: MultipartTarget, marker: Marker, busy: set[str]) -> str | None:
    """The newest unfinished upload of the key that carries ``marker`` and whose
    transfer has ended; refuses when one is still running (``busy`` here, or a
    live marker younger than the lease)."""
    uploads = await multipart.list_uploads(
        target.transport, target.bucket, target.key, target.limiter
    )
    candidates = sorted(
        (u for u in uploads if u.key == target.key), key=lambda u: u.initiated, reverse=True
    )
    for upload in candidates:
        seen = await read_marker(target, upload.upload_id, marker)
        if seen.state is None:
            continue  # a chunked upload, another file's, another caller's: never touched
        if upload.upload_id in busy or (seen.state == "live" and seen.age < LEASE):
            raise in_progress(target, upload.upload_id, seen)
        return upload.upload_id
    return None


async def check_no_rival(target: MultipartTarget, upload_id: str, marker: Marker) -> None:
    """After creating ``upload_id`` and sending its marker: refuse (and abort it) when
    another live upload with the same marker sorts before it."""
    uploads = await multipart.list_uploads(
        target.transport, target.bucket, target.key, target.limiter
    )
    ours = next((u for u in uploads if u.upload_id == upload_id), None)
    for upload in uploads:
        if upload.key != target.key or upload.upload_id == upload_id:
            continue
        if ours is not None and (ours.initiated, ours.upload_id) < (
            upload.initiated,
            upload.upload_id,
        ):
            continue  # ours goes first: the other one gives way when it looks
        seen = await read_marker(target, upload.upload_id, marker)
        if seen.state == "live" and seen.age < LEASE:
            await multipart.abort_upload(target, upload_id)
            raise in_progress(target, upload.upload_id, seen)


async def with_heartbeat(
    target: MultipartTarget,
    upload_id: str,
    marker: Marker,
    work: Callable[[Callable[[], None]], Awaitable[T]],
) -> T:
    """Run ``work`` keeping the upload's marker live; release it if ``work`` fails
    (the parts stay for the next attempt, which may then adopt them at once).
    ``work`` is given the function that stops the heartbeat: it calls it before
    completing the upload, so no marker is sent to a completed upload."""
    outcome: list[T] = []
    beating = trio.CancelScope()

    async def beat() -> None:
        with beating:
            while True:
                await trio.sleep(HEARTBEAT)
                try:
                    await send_marker(target, upload_id, marker.live)
                except Exception as exc:  # a missed beat only ages the marker
                    log.warning(
                        "event=resume_heartbeat_failed key=%s error=%r", target.key, str(exc)
                    )

    async def run() -> None:
        try:
            outcome.append(await work(beating.cancel))
        finally:
            beating.cancel()

    try:
        with first_error():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(beat)
                nursery.start_soon(run)
    except Exception:
        with trio.CancelScope(shield=True), trio.move_on_after(multipart.ABORT_TIMEOUT):
            try:
                await send_marker(target, upload_id, marker.released)
            except Exception as exc:
                log.warning("event=resume_release_failed key=%s error=%r", target.key, str(exc))
        raise
    return outcome[0]
