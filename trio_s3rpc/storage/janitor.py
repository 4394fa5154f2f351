"""Nothing left behind: retried aborts and the stale-upload reaper.

Two background duties, run by the application next to the RPC server:

- An abort that failed while a call was failing (the service was down) is
  queued in the uploads' :class:`UploadBook` and retried here with backoff
  until it succeeds or the server stops.
- On start and then periodically, unfinished multipart uploads under each
  bucket's prefix older than ``s3.abort_stale_after`` are aborted and logged:
  the leftovers of crashed processes, or of uploads nobody resumed. Uploads
  this process is working on are never touched, from the moment their
  CreateMultipartUpload is sent (the service may list an upload before its
  answer, with its id, has reached us; moto lists every upload as made in
  2010, so stale at once), nor (under workers) those
  another worker of the service is working on or creating: ``elsewhere`` asks
  them, and a round in which one cannot say aborts nothing.
- In the same rounds, ReadFile's temporary ``*.trio-s3rpc-part`` files
  under ``s3.local_roots`` not written for ``s3.abort_stale_after`` are
  removed (those a killed download left behind).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

import trio

from trio_s3rpc.errors import RPCError
from trio_s3rpc.s3.multipart import (
    BusyUploads,
    MultipartTarget,
    UploadBook,
    list_uploads,
    send_abort,
)
from trio_s3rpc.storage.buckets import Storage, StorageErrors

log = logging.getLogger("trio_s3rpc.janitor")

RETRY_FIRST_DELAY = 1.0
RETRY_MAX_DELAY = 60.0


def reap_interval(stale_after: float) -> float:
    """How often to look for stale uploads: often enough to honour the age, at most hourly."""
    return min(max(stale_after / 2, 1.0), 3600.0)


class Janitor:
    """Retries the aborts queued in ``storage.book`` and reaps stale uploads."""

    def __init__(
        self,
        storage: Storage,
        stale_after: float,
        elsewhere: Callable[[], Awaitable[BusyUploads | None]] | None = None,
        local_leftovers: Callable[[float], list[str]] | None = None,
    ) -> None:
        self.storage = storage
        self.book: UploadBook = storage.book
        self.stale_after = stale_after
        # The uploads the service's other processes work on; None when unknown.
        self.elsewhere = elsewhere
        # Removes temporary local files older than a Unix time (blocking: run in a thread).
        self.local_leftovers = local_leftovers
        self.reaped: list[str] = []

    @property
    def pending_aborts(self) -> int:
        """Failed aborts queued or being retried."""
        return self.book.pending_aborts

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run both duties until cancelled."""
        async with trio.open_nursery() as nursery:
            if self.stale_after > 0:
                nursery.start_soon(self._reap_periodically)
            task_status.started()
            async for target, upload_id in self.book.failed_aborts:
                nursery.start_soon(self._retry_abort, target, upload_id)

    async def _retry_abort(self, target: MultipartTarget, upload_id: str) -> None:
        delay = RETRY_FIRST_DELAY
        attempt = 0
        try:
            while True:
                await trio.sleep(delay * (0.5 + random.random() / 2))
                attempt += 1
                try:
                    with StorageErrors(target.bucket):
                        await send_abort(target, upload_id)
                except RPCError as exc:
                    log.warning(
                        "event=abort_retry_failed key=%s upload_id=%s attempt=%d error=%r",
                        target.key,
                        upload_id,
                        attempt,
                        str(exc),
                    )
                    delay = min(delay * 2, RETRY_MAX_DELAY)
                    continue
                log.info(
                    "event=abort_retry_succeeded key=%s upload_id=%s attempt=%d",
                    target.key,
                    upload_id,
                    attempt,
                )
                return
        finally:
            self.book.abort_settled()

    async def _reap_periodically(self) -> None:
        while True:
            await self.sweep_local_files()
            try:
                await self.reap_once()
            except Exception as exc:  # the service may be down; try again next round
                log.warning("event=reap_failed error=%r", str(exc))
            await trio.sleep(reap_interval(self.stale_after))

    async def sweep_local_files(self) -> list[str]:
        """Remove the stale temporary files of downloads; answer their paths."""
        if self.local_leftovers is None:
            return []
        try:
            removed = await trio.to_thread.run_sync(
                self.local_leftovers, time.time() - self.stale_after
            )
        except OSError as exc:  # a root that went away: the next round tries again
            log.warning("event=local_sweep_failed error=%r", str(exc))
            return []
        for path in removed:
            log.info("event=stale_part_file_removed path=%r", path)
        return removed

    async def reap_once(self) -> list[str]:
        """Abort every stale upload under the buckets' prefixes; answer the keys aborted."""
        horizon = time.time() - self.stale_after
        seen: set[tuple[int, str, str]] = set()
        aborted: list[str] = []
        for bucket in list(self.storage.buckets.values()):
            place = (id(bucket.transport), bucket.config.bucket, bucket.config.prefix)
            if place in seen:
                continue
            seen.add(place)
            with bucket.errors():
                uploads = await list_uploads(
                    bucket.transport, bucket.config.bucket, bucket.config.prefix, bucket.limiter
                )
            stale = [u for u in uploads if u.initiated <= horizon]
            busy = self.book.busy()
            if stale and self.elsewhere is not None:
                others = await self.elsewhere()
                if others is None:
                    log.warning("event=reap_skipped reason=a_worker_did_not_say_what_it_uploads")
                    continue
                busy |= others
            for upload in stale:
                if busy.spares(bucket.config.bucket, upload.key, upload.upload_id):
                    continue
                try:
                    with bucket.errors(upload.key):
                        await send_abort(bucket.multipart(upload.key, {}), upload.upload_id)
                except RPCError as exc:
                    log.warning(
                        "event=reap_abort_failed bucket=%s key=%s error=%r",
                        bucket.config.bucket,
                        upload.key,
                        str(exc),
                    )
                    continue
                age_hours = (time.time() - upload.initiated) / 3600
                log.info(
                    "event=stale_upload_aborted bucket=%s key=%s upload_id=%s age_hours=%.1f",
                    bucket.config.bucket,
                    upload.key,
                    upload.upload_id,
                    age_hours,
                )
                aborted.append(upload.key)
        self.reaped.extend(aborted)
        return aborted
