"""Chunked uploads that survive restarts: UploadStart/Chunk/Status/Finish/Abort.

The ``upload_id`` a client gets is a signed, self-describing token: bucket,
pathname, the service's multipart upload id and the part size, with an HMAC
keyed by the bucket's server credentials. Any server instance with the same
configuration, including one started after a crash, can continue the upload
from the service's own state (ListParts); nothing is tied to a connection or
a process.

In a process, an upload has a session: bytes received but not yet a full
part, and the parts in flight (at most ``concurrency``; a chunk call waits
for a free slot, which bounds memory). Only whole parts reach the service,
so after a crash the client asks ``s3.UploadStatus`` for ``committed_bytes``
and resends from there; a chunk carrying ``offset`` is recognised when
resent, so nothing is stored twice or out of order.

A part failing after its retries aborts the upload, as does UploadAbort or an
idle session expiring. A graceful shutdown does not: parts in flight are
dropped, and the client resumes from ``committed_bytes``.

The size of an upload is not known when it starts, so its part size stays
the bucket's: it can hold ``part_size * 10,000`` bytes (at most 5 TiB), and a
chunk that would take it past that is refused before any of it is sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from trio_s3rpc import checksums
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3 import multipart
from trio_s3rpc.s3.multipart import MultipartTarget
from trio_s3rpc.s3.parts import upload_limit
from trio_s3rpc.s3.xml import PartEntry
from trio_s3rpc.storage import copies, objects
from trio_s3rpc.storage.archival import Archival
from trio_s3rpc.storage.buckets import ObjectRef, Storage, StorageError
from trio_s3rpc.storage.records import ObjectHeaders, ObjectInfo
from trio_s3rpc.storage.tokens import UploadToken, decode_token, encode_token

log = logging.getLogger("trio_s3rpc.uploads")


@dataclass(slots=True)
class Session:
    """What this process holds of one upload."""

    token: UploadToken
    ref: ObjectRef
    target: MultipartTarget
    slots: trio.Semaphore
    received: int
    next_part: int
    buffer: bytearray = field(default_factory=bytearray)
    lock: trio.Lock = field(default_factory=trio.Lock)
    last_activity: float = 0.0
    in_flight: int = 0
    idle: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None
    part_scopes: set[trio.CancelScope] = field(default_factory=set)
    # The CRC32C of every byte received, in order; None when bytes were received
    # by another process (a resumed upload), whose checksum is then not known.
    checksum: checksums.RunningChecksum | None = None


@dataclass(slots=True, frozen=True)
class UploadStatus:
    committed_bytes: int
    parts: int


class ChunkedUploads:
    """The chunked uploads this process is serving; :meth:`run` owns their part tasks."""

    def __init__(self, storage: Storage, idle_timeout: float) -> None:
        # The registry: an upload_id names its bucket, resolved when it comes back.
        self.storage = storage
        self.idle_timeout = idle_timeout
        self._sessions: dict[str, Session] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own the part tasks and expire idle sessions until cancelled.

        Cancelling drops the parts in flight but aborts nothing: the uploads
        stay resumable from any instance.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._expire_idle)
            task_status.started()
            await trio.sleep_forever()

    def working_on(self) -> set[str]:
        """The service upload ids this process holds a session for."""
        return set(self._sessions)

    # -- tokens and sessions -----------------------------------------------

    def _secret_for(self, bucket_name: str) -> str | None:
        bucket = self.storage.buckets.get(bucket_name)
        return None if bucket is None else bucket.server.credentials.secret

    def _token(self, upload_id: str) -> UploadToken:
        return decode_token(upload_id, self._secret_for)

    async def _session(self, upload_id: str) -> Session:
        token = self._token(upload_id)
        session = self._sessions.get(token.service_upload_id)
        if session is not None:
            return session
        # Unknown here (another instance, or before a restart): rebuild from the service.
        ref = self.storage.resolve(token.bucket, token.pathname)
        target = ref.bucket.multipart(ref.key, {})
        parts = await self._committed_parts(ref, token, target)
        return self._register(token, ref, target, parts)

    def _register(
        self,
        token: UploadToken,
        ref: ObjectRef,
        target: MultipartTarget,
        committed: Sequence[PartEntry],
    ) -> Session:
        """This process's session for an upload whose ``committed`` parts the service holds.

        An upload picked up after its start (another process, a restart) has
        lost the running checksum of the bytes sent before, so it gets none.
        """
        session = Session(
            token=token,
            ref=ref,
            target=target,
            slots=trio.Semaphore(ref.bucket.config.concurrency),
            received=sum(part.size for part in committed),
            next_part=len(committed) + 1,
            checksum=None if committed else checksums.RunningChecksum(),
        )
        session.idle.set()
        session.last_activity = trio.current_time()
        return self._sessions.setdefault(token.service_upload_id, session)

    async def _committed_parts(
        self, ref: ObjectRef, token: UploadToken, target: MultipartTarget
    ) -> list[PartEntry]:
        """The whole parts on the service, which must be 1..n of ``part_size`` each."""
        try:
            with ref.bucket.errors(ref.key):
                parts = await multipart.list_parts(target, token.service_upload_id)
        except StorageError as exc:
            if exc.service_code == "NoSuchUpload" or exc.status == 404:
                raise RPCError(
                    ErrorCode.UPLOAD_NOT_FOUND,
                    "the upload is finished, aborted or expired",
                    f"pathname: {token.pathname}",
                ) from None
            raise
        for index, part in enumerate(parts, 1):
            if part.part_number != index or part.size != token.part_size:
                # Only whole parts are ever sent before UploadFinish; anything
                # else was not written by this protocol.
                raise RPCError(
                    ErrorCode.S3_OPERATION_FAILED,
                    "the service holds parts this upload did not send",
                    f"part {part.part_number} of {part.size} bytes",
                )
        return parts

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.token.service_upload_id, None)
        for scope in session.part_scopes:
            scope.cancel()

    # -- the calls ---------------------------------------------------------

    async def start(
        self,
        ref: ObjectRef,
        visibility: str,
        metadata: Mapping[str, str],
        content_type: str,
        archival: Archival | None = None,
        standard: ObjectHeaders = objects.NO_HEADERS,
    ) -> str:
        bucket = ref.bucket
        headers = await objects.new_object_headers(
            ref, metadata, visibility, content_type, archival=archival, standard=standard
        )
        target = bucket.multipart(ref.key, headers)
        with bucket.errors(ref.key):
            service_upload_id = await multipart.create_upload(target)
        token = UploadToken(bucket.name, ref.pathname, service_upload_id, bucket.config.part_size)
        self._register(token, ref, target, ())
        return encode_token(token, bucket.server.credentials.secret)

    async def chunk(self, upload_id: str, content: bytes, offset: int | None) -> int:
        """Take a chunk; answer the bytes received so far."""
        session = await self._session(upload_id)
        async with session.lock:
            self._raise_failure(session)
            session.last_activity = trio.current_time()
            if offset is not None:
                if offset < 0 or offset > session.received:
                    raise RPCError(
                        ErrorCode.INVALID_REQUEST,
                        f"offset {offset} does not follow the bytes received; "
                        f"resend from offset {session.received}",
                        f"upload of {session.token.pathname}",
                    )
                # A resent chunk: keep only the bytes not yet received.
                content = content[session.received - offset :]
            limit = upload_limit(session.token.part_size)
            if session.received + len(content) > limit:
                raise RPCError(
                    ErrorCode.INVALID_REQUEST,
                    f"this chunk would take the upload past {limit} bytes, the most "
                    f"10,000 parts of {session.token.part_size} bytes (part_size) can hold; "
                    "raise the bucket's part_size or use s3.WriteFile",
                    f"upload of {session.token.pathname}, {session.received} bytes received",
                )
            session.buffer += content
            session.received += len(content)
            if session.checksum is not None:
                session.checksum.update(content)
            part_size = session.token.part_size
            # Keep a remainder, so UploadFinish always has a last part to send.
            while len(session.buffer) > part_size:
                await session.slots.acquire()  # waits while `concurrency` parts are in flight
                part = bytes(session.buffer[:part_size])
                del session.buffer[:part_size]
                self._start_part(session, part)
            session.last_activity = trio.current_time()
            return session.received

    def _start_part(self, session: Session, data: bytes) -> None:
        assert self._nursery is not None, "ChunkedUploads.run is not running"
        number = session.next_part
        session.next_part += 1
        session.in_flight += 1
        session.idle = trio.Event()
        self._nursery.start_soon(self._send_part, session, number, data)

    async def _send_part(self, session: Session, number: int, data: bytes) -> None:
        scope = trio.CancelScope()
        session.part_scopes.add(scope)
        try:
            with scope, session.ref.bucket.errors(session.ref.key):
                await multipart.upload_part(
                    session.target, session.token.service_upload_id, number, data
                )
        except Exception as exc:
            # After the transport's retries: the upload cannot be whole any more.
            session.error = exc
            self._forget(session)
            await multipart.abort_upload(session.target, session.token.service_upload_id)
        finally:
            session.part_scopes.discard(scope)
            session.in_flight -= 1
            session.slots.release()
            if session.in_flight == 0:
                session.idle.set()

    def _raise_failure(self, session: Session) -> None:
        error = session.error
        if error is None:
            return
        self._forget(session)
        if isinstance(error, RPCError):
            raise RPCError(
                error.code,
                f"a part of this upload failed, so it was aborted: {error.message}",
                error.details,
            )
        raise RPCError(
            ErrorCode.S3_OPERATION_FAILED,
            f"a part of this upload failed, so it was aborted: {error!r}",
            f"pathname: {session.token.pathname}",
        )

    def _known(self, upload_id: str) -> tuple[UploadToken, ObjectRef, Session | None]:
        """The upload's token, its object, and this process's session if it has one."""
        token = self._token(upload_id)
        ref = self.storage.resolve(token.bucket, token.pathname)
        return token, ref, self._sessions.get(token.service_upload_id)

    async def status(self, upload_id: str) -> UploadStatus:
        """What the service holds durably: the bytes a client resends after."""
        token, ref, local = self._known(upload_id)
        if local is not None:
            self._raise_failure(local)
        parts = await self._committed_parts(ref, token, ref.bucket.multipart(ref.key, {}))
        return UploadStatus(sum(p.size for p in parts), len(parts))

    async def finish(self, upload_id: str) -> tuple[str, ObjectInfo]:
        """Send the last part, wait for every part, complete; answer pathname and object."""
        session = await self._session(upload_id)
        async with session.lock:
            self._raise_failure(session)
            if session.buffer or session.next_part == 1:
                # The last part (possibly empty, when nothing at all was sent).
                await session.slots.acquire()
                self._start_part(session, bytes(session.buffer))
                session.buffer.clear()
            await session.idle.wait()
            self._raise_failure(session)
            token = session.token
            try:
                with session.ref.bucket.errors(session.ref.key):
                    parts = await multipart.list_parts(session.target, token.service_upload_id)
                    size = sum(p.size for p in parts)
                    if size != session.received or len(parts) != session.next_part - 1:
                        raise RPCError(
                            ErrorCode.S3_OPERATION_FAILED,
                            "the service holds a different number of bytes than were sent",
                            f"sent {session.received}, stored {size}",
                        )
                    etag = await multipart.complete_upload(
                        session.target,
                        token.service_upload_id,
                        {p.part_number: p.etag for p in parts},
                    )
            finally:
                self._forget(session)
        written = ObjectInfo(size=size, last_modified=int(time.time()), mime_type="", etag=etag)
        if session.checksum is None or session.checksum.length != size:
            return token.pathname, written
        written = replace(written, checksum=session.checksum.text())
        written = await copies.attach_checksum(session.ref, session.target.create_headers, written)
        return token.pathname, written

    async def abort(self, upload_id: str) -> None:
        token, ref, local = self._known(upload_id)
        if local is not None:
            self._forget(local)
        with ref.bucket.errors(ref.key):
            await multipart.send_abort(ref.bucket.multipart(ref.key, {}), token.service_upload_id)
        log.info("event=upload_aborted pathname=%s reason=requested", token.pathname)

    async def _expire_idle(self) -> None:
        interval = max(0.05, min(self.idle_timeout / 4, 30.0))
        while True:
            await trio.sleep(interval)
            horizon = trio.current_time() - self.idle_timeout
            for session in list(self._sessions.values()):
                if session.last_activity < horizon and not session.lock.locked():
                    log.info(
                        "event=upload_expired bucket=%s pathname=%s",
                        session.ref.bucket.name,
                        session.token.pathname,
                    )
                    self._forget(session)
                    await multipart.abort_upload(session.target, session.token.service_upload_id)
