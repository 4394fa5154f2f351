"""Chunked uploads, whole across restarts, instances and workers: s3.Upload*.

The ``upload_id`` a client gets is a signed, self-describing token: bucket,
pathname, the service's multipart upload id, the part size and the headers
the object was created with, with an HMAC keyed by the bucket's server
credentials. Any server instance or worker with the same configuration,
including one started after a crash, can continue, report and finish the
upload from the service's own state (ListParts); nothing is tied to a
connection or a process.

Part ``n`` always holds the bytes ``[(n-1)*part_size, n*part_size)``, so
parts are placed by offset, never by arrival: two instances that send the
same part send the same bytes, and neither can shift the other's.

In a process, an upload has a session: a part-aligned ``base`` below which
every part is sent (by this process, or found on the service), the bytes
from ``base`` not yet a whole part (the tail, at most ``part_size``), and
the parts in flight (at most ``concurrency``; a chunk call waits until one
is done, which bounds memory). Only whole parts reach the service before
UploadFinish: the tail is **not durable**, and the client keeps every byte
from ``committed_bytes`` (UploadStatus, the same on every instance: the whole
parts 1..n the service holds) until the finish succeeds, and resends what
a refusal asks for.

- A chunk whose ``offset`` is past what this process holds is first checked
  against the service (another instance may have stored more); if the bytes
  still do not follow, it is refused and the refusal names the offset to
  resend from, where this process can continue.
- UploadFinish needs ``size``, the total the client sent. It completes only
  when this process holds every byte: the parts below its tail on the
  service (checked by ListParts after its own parts landed) and the tail
  itself. An instance without a session (another one took the chunks, or it
  restarted) holds what the service holds; a finish there needs ``size`` to
  equal ``committed_bytes``, otherwise it is refused naming the offset to
  resend from, and the client sends the rest to it, then finishes again.
  A refused finish leaves the upload resumable.
- The checksum answered and stored is the CRC32C of the parts' bytes,
  combined in part order: for parts this process sent, from their bytes as
  they went; for parts another process sent, read back from the completed
  object (ranged GETs of just those parts).

A part failing after its retries aborts the upload, as does UploadAbort or an
idle session expiring, unless the service shows another process has worked
on the upload since (then this process only forgets its session). A graceful
shutdown aborts nothing: parts in flight are dropped, and the client resumes
from ``committed_bytes``.

A session and the checks of a finish are in ``sessions.py``, the token in
``tokens.py``.

Memory: the tails and the parts in flight are counted in the process's
budget (``s3.memory_limit``); a chunk whose tail would pass it is refused
with ``RESOURCE_EXHAUSTED`` (retry it: parts in flight free their bytes as
they land), never waited for, since only the callers' own later chunks and
finishes free tails. At most ``s3.max_chunked_uploads`` uploads have a
session in a process; past that, UploadStart (before any request) and
continuing an upload unknown here are refused likewise.

The size of an upload is not known when it starts, so its part size stays
the bucket's: it can hold ``part_size * 10,000`` bytes (at most 5 TiB), and a
chunk that would take it past that is refused before any of it is sent.
"""

from __future__ import annotations

import logging
import time

import trio

from trio_s3rpc.budget import MemoryBudget
from trio_s3rpc.config import DEFAULT_MAX_CHUNKED_UPLOADS
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3 import multipart
from trio_s3rpc.s3.multipart import MultipartTarget
from trio_s3rpc.s3.parts import upload_limit
from trio_s3rpc.s3.xml import PartEntry
from trio_s3rpc.storage import objects
from trio_s3rpc.storage.buckets import ObjectRef, Storage, StorageError
from trio_s3rpc.storage.records import NewObject, ObjectInfo
from trio_s3rpc.storage.sessions import (
    Session,
    UploadStatus,
    committed_prefix,
    resend_refusal,
    store_checksum,
    whole_upload,
)
from trio_s3rpc.storage.tokens import UploadToken, decode_token, encode_token

log = logging.getLogger("trio_s3rpc.uploads")


class ChunkedUploads:
    """The chunked uploads this process is serving; :meth:`run` owns their part tasks."""

    def __init__(
        self,
        storage: Storage,
        idle_timeout: float,
        *,
        budget: MemoryBudget | None = None,
        max_uploads: int = DEFAULT_MAX_CHUNKED_UPLOADS,
    ) -> None:
        # The registry: an upload_id names its bucket, resolved when it comes back.
        self.storage = storage
        self.idle_timeout = idle_timeout
        self.budget = budget if budget is not None else MemoryBudget(2**62, 2**62, trim=False)
        self.max_uploads = max_uploads
        self._sessions: dict[str, Session] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
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

    def bucket_of(self, upload_id: str) -> str:
        """The bucket of a valid upload token, "" for anything else (a metrics label)."""
        try:
            return self._token(upload_id).bucket
        except RPCError:
            return ""

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def _check_room(self) -> None:
        """Refuse a new session past ``s3.max_chunked_uploads`` (before any request)."""
        if len(self._sessions) >= self.max_uploads:
            raise RPCError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"{len(self._sessions)} chunked uploads are in progress in this process, "
                f"the most s3.max_chunked_uploads allows ({self.max_uploads})",
                "finish or abort one, or retry later",
            )

    def _account(self, session: Session) -> None:
        """Count the session's tail in the budget as it is now (nothing once forgotten)."""
        mine = self._sessions.get(session.token.service_upload_id) is session
        size = len(session.buffer) if mine else 0
        if size > session.counted:
            self.budget.force(size - session.counted)
        elif size < session.counted:
            self.budget.release(session.counted - size)
        session.counted = size

    async def _session(self, upload_id: str) -> Session:
        token = self._token(upload_id)
        session = self._sessions.get(token.service_upload_id)
        if session is not None:
            return session
        self._check_room()
        # Unknown here (another instance, or before a restart): what the service holds.
        ref = self.storage.resolve(token.bucket, token.pathname)
        target = ref.bucket.multipart(ref.key, token.create_headers or {})
        parts = await self._listed_parts(ref, token, target)
        return self._register(token, ref, target, len(committed_prefix(parts, token.part_size)))

    def _register(
        self, token: UploadToken, ref: ObjectRef, target: MultipartTarget, whole_parts: int
    ) -> Session:
        """This process's session for an upload whose parts 1..``whole_parts`` are stored."""
        session = Session(
            token=token,
            ref=ref,
            target=target,
            parts_in_flight=trio.Semaphore(ref.bucket.config.concurrency),
            base=whole_parts * token.part_size,
        )
        session.idle.set()
        session.touch()
        return self._sessions.setdefault(token.service_upload_id, session)

    async def _listed_parts(
        self, ref: ObjectRef, token: UploadToken, target: MultipartTarget
    ) -> list[PartEntry]:
        try:
            with ref.bucket.errors(ref.key):
                return await multipart.list_parts(target, token.service_upload_id)
        except StorageError as exc:
            if exc.service_code == "NoSuchUpload" or exc.status == 404:
                raise RPCError(
                    ErrorCode.UPLOAD_NOT_FOUND,
                    "the upload is finished, aborted or expired",
                    f"pathname: {token.pathname}",
                ) from None
            raise

    async def _catch_up(self, session: Session) -> list[PartEntry]:
        """Move the session past what the service holds beyond it (another process sent it).

        The whole parts 1..n on the service hold exactly the bytes this
        process would send for them, so any of them at or past ``base``
        replaces the start of the tail. Answers the parts listed.
        """
        parts = await self._listed_parts(session.ref, session.token, session.target)
        committed = len(committed_prefix(parts, session.token.part_size)) * session.token.part_size
        if committed > session.base:
            drop = min(committed - session.base, len(session.buffer))
            del session.buffer[:drop]
            if committed > session.received:
                session.buffer.clear()
            session.base = committed
            self._account(session)
        return parts

    def _forget(self, session: Session) -> None:
        if self._sessions.get(session.token.service_upload_id) is session:
            del self._sessions[session.token.service_upload_id]
        self._account(session)
        for scope in session.part_scopes:
            scope.cancel()

    # -- the calls ---------------------------------------------------------

    async def start(self, ref: ObjectRef, new: NewObject) -> str:
        """Create the upload of ``ref``, created as ``new`` asks; answer its token."""
        bucket = ref.bucket
        self._check_room()
        headers = await objects.new_object_headers(ref, new)
        target = bucket.multipart(ref.key, headers)
        with bucket.errors(ref.key):
            service_upload_id = await multipart.create_upload(target)
        token = UploadToken(
            bucket.name, ref.pathname, service_upload_id, bucket.config.part_size, dict(headers)
        )
        self._register(token, ref, target, 0)
        if target.book is not None:
            # The session speaks for the upload from now on (working_on).
            target.book.in_progress.discard(service_upload_id)
        return encode_token(token, bucket.server.credentials.secret)

    async def chunk(self, upload_id: str, content: bytes, offset: int | None) -> int:
        """Take a chunk; answer the bytes this process holds so far.

        Without ``offset`` the chunk follows what this process holds.
        """
        session = await self._session(upload_id)
        async with session.lock:
            self._raise_failure(session)
            session.touch()
            pathname = session.token.pathname
            if offset is None:
                offset = session.received
            if offset < 0:
                raise resend_refusal("offset must not be negative", session.received, pathname)
            if offset > session.received:
                await self._catch_up(session)
                if offset > session.received:
                    raise resend_refusal(
                        f"offset {offset} does not follow the bytes this server holds",
                        session.received,
                        pathname,
                    )
            # A resent chunk: keep only the bytes not yet held.
            content = content[session.received - offset :]
            limit = upload_limit(session.token.part_size)
            if session.received + len(content) > limit:
                raise RPCError(
                    ErrorCode.INVALID_REQUEST,
                    f"this chunk would take the upload past {limit} bytes, the most "
                    f"10,000 parts of {session.token.part_size} bytes (part_size) can hold; "
                    "raise the bucket's part_size or use s3.WriteFile",
                    f"upload of {pathname}, {session.received} bytes received",
                )
            # The tail grows by what is new (refused, retryably, when the budget is spent).
            self.budget.take_now(len(content), f"the tail of the chunked upload of {pathname}")
            session.buffer += content
            session.counted += len(content)
            part_size = session.token.part_size
            try:
                # Keep a tail, so UploadFinish always has a last part to send.
                while len(session.buffer) > part_size:
                    # Waits while `concurrency` parts are in flight.
                    await session.parts_in_flight.acquire()
                    # Through a memoryview: a bytearray slice would be a copy of its own,
                    # so the part would be held twice while it is made.
                    with memoryview(session.buffer) as view:
                        part = bytes(view[:part_size])
                    self._start_part(session, part)
                    del session.buffer[:part_size]
                    session.base += part_size
            finally:
                self._account(session)
            session.touch()
            return session.received

    def _start_part(self, session: Session, data: bytes) -> None:
        assert self._nursery is not None, "ChunkedUploads.run is not running"
        self.budget.force(len(data))  # released when the part has landed
        session.in_flight += 1
        session.idle = trio.Event()
        self._nursery.start_soon(self._send_part, session, session.next_part, data)

    async def _send_part(self, session: Session, number: int, data: bytes) -> None:
        scope = trio.CancelScope()
        session.part_scopes.add(scope)
        try:
            with scope, session.ref.bucket.errors(session.ref.key):
                await multipart.upload_part(
                    session.target, session.token.service_upload_id, number, data
                )
            session.part_checksums.add(number, data)
        except Exception as exc:
            # After the transport's retries: the upload cannot be whole any more.
            session.error = exc
            self._forget(session)
            await multipart.abort_upload(session.target, session.token.service_upload_id)
        finally:
            self.budget.release(len(data))
            session.part_scopes.discard(scope)
            session.in_flight -= 1
            session.parts_in_flight.release()
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
        """What the service holds durably, the same on every instance: where to resend from."""
        token, ref, local = self._known(upload_id)
        if local is not None:
            self._raise_failure(local)
        parts = await self._listed_parts(ref, token, ref.bucket.multipart(ref.key, {}))
        whole = committed_prefix(parts, token.part_size)
        return UploadStatus(len(whole) * token.part_size, len(whole))

    async def finish(self, upload_id: str, size: int) -> tuple[str, ObjectInfo]:
        """Complete the upload of exactly ``size`` bytes, or refuse naming where to resend from.

        Answers the pathname and the object written.
        """
        if size < 0:
            raise RPCError(ErrorCode.INVALID_REQUEST, "field 'size' must not be negative")
        session = await self._session(upload_id)
        async with session.lock:
            self._raise_failure(session)
            session.touch()
            token = session.token
            if session.received < size:
                await self._catch_up(session)
            if session.received < size:
                raise resend_refusal(
                    f"this server holds {session.received} of the {size} bytes sent",
                    session.received,
                    token.pathname,
                )
            if session.received > size:
                raise RPCError(
                    ErrorCode.INVALID_REQUEST,
                    f"size {size} is less than the {session.received} bytes this upload "
                    "received; send the upload's total size",
                    f"upload of {token.pathname}",
                )
            last = size // token.part_size
            if session.buffer or size == 0:
                # The tail is the last part (an empty one for an empty upload).
                await session.parts_in_flight.acquire()
                last = session.next_part
                self._start_part(session, bytes(session.buffer))
            await session.idle.wait()
            self._raise_failure(session)
            parts = await self._listed_parts(session.ref, token, session.target)
            try:
                etags = whole_upload(session, parts, last, size)
            finally:
                self._account(session)
            try:
                with session.ref.bucket.errors(session.ref.key):
                    etag = await multipart.complete_upload(
                        session.target, token.service_upload_id, etags
                    )
            finally:
                self._forget(session)
        written = ObjectInfo(size=size, last_modified=int(time.time()), mime_type="", etag=etag)
        return token.pathname, await store_checksum(session, written, last)

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
                    await self._expire(session)

    async def _expire(self, session: Session) -> None:
        """Abort an idle upload, unless another process has worked on it since."""
        self._forget(session)
        token = session.token
        try:
            parts = await self._listed_parts(session.ref, token, session.target)
        except RPCError:
            parts = []  # gone already, or the service is down: the abort is retried
        # Part times are whole seconds: only a part stored clearly after this
        # process's last activity shows another one at work.
        if any(part.last_modified > session.last_activity_wall + 1 for part in parts):
            log.info(
                "event=upload_session_dropped pathname=%s reason=continued_elsewhere",
                token.pathname,
            )
            return
        log.info(
            "event=upload_expired bucket=%s pathname=%s", session.ref.bucket.name, token.pathname
        )
        await multipart.abort_upload(session.target, token.service_upload_id)
