"""A worker's side of the service: its peer socket, the supervisor, the other workers.

A worker is ``python -m trio_s3rpc worker``, started by the supervisor with
the listening sockets' fds passed in, its config on stdin, and stdin kept
open as a lifeline: when the supervisor dies (even by SIGKILL) stdin reads
EOF and the worker stops at once, as the service it belonged to did.

:class:`WorkerLink` is what the application uses to act as one service:

- bucket registrations go through the supervisor, which orders them and
  applies each on every live worker before the call is answered;
- TransferStatus and Cancel for a transfer this worker does not run ask the
  other workers (:class:`~trio_s3rpc.rpc.control.RemoteTransfers`);
- the stale-upload reaper (run by slot 0 only) asks the other workers which
  multipart uploads they are working on, and skips those.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from trio_s3rpc.cluster import wire
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.rpc.typed import CancelResponse, TransferStatusResponse
from trio_s3rpc.s3.multipart import BusyUploads

A = TypeVar("A")

log = logging.getLogger("trio_s3rpc.cluster")

SUPERVISOR_SOCKET = "supervisor.sock"


def worker_socket(run_dir: str, slot: int) -> str:
    return os.path.join(run_dir, f"worker-{slot}.sock")


def supervisor_socket(run_dir: str) -> str:
    return os.path.join(run_dir, SUPERVISOR_SOCKET)


@dataclass(slots=True, frozen=True)
class WorkerPlace:
    """Where a worker stands in its service: its slot and the run directory."""

    run_dir: str
    slot: int
    workers: int

    @property
    def runs_reaper(self) -> bool:
        # One reaper per service: the worker in slot 0 (restarted in slot 0 too).
        return self.slot == 0


class WorkerLink:
    """The requests a worker sends to its supervisor and its peers."""

    def __init__(self, place: WorkerPlace) -> None:
        self.place = place

    @property
    def _supervisor(self) -> str:
        return supervisor_socket(self.place.run_dir)

    def _peers(self) -> list[str]:
        return [
            worker_socket(self.place.run_dir, slot)
            for slot in range(self.place.workers)
            if slot != self.place.slot
        ]

    async def hello(self) -> list[wire.Registration]:
        """Join the service; answer the buckets registered so far, in order."""
        joined = await self._ask_supervisor(wire.Hello(self.place.slot), wire.Joined)
        return joined.buckets

    async def ready(self, address: str) -> None:
        await self._ask_supervisor(wire.Ready(self.place.slot, os.getpid(), address), wire.Done)

    async def register_bucket(self, name: str, settings: dict[str, str | int]) -> None:
        """Register on every worker; answers once each live worker has it."""
        await self._ask_supervisor(wire.RegisterBucket(name, settings), wire.Done)

    async def _ask_supervisor(self, request: Any, answer: type[A]) -> A:
        try:
            return await wire.ask(self._supervisor, request, answer)
        except wire.PeerUnavailable as exc:
            raise RPCError(
                ErrorCode.SHUTTING_DOWN, "the service's supervisor is not answering", str(exc)
            ) from None

    async def ask_peers(self, request: Any, answer: type[A]) -> tuple[list[A], bool]:
        """Every other live worker's answer, asked at once, and whether one timed out.

        A worker that is not running (restarting, stopping) refuses the
        connection and is left out: it works on nothing.
        """
        answers: list[A] = []
        timed_out = False

        async def one(path: str) -> None:
            nonlocal timed_out
            try:
                answers.append(await wire.ask(path, request, answer, seconds=5.0))
            except wire.PeerTimeout:
                timed_out = True
            except wire.PeerUnavailable:
                pass

        async with trio.open_nursery() as nursery:
            for path in self._peers():
                nursery.start_soon(one, path)
        return answers, timed_out

    # -- RemoteTransfers ----------------------------------------------------

    async def transfer_status(self, transfer_id: str) -> TransferStatusResponse | None:
        answers, _ = await self.ask_peers(wire.TransferStatusQuery(transfer_id), wire.Found)
        return next((a.status for a in answers if a.status is not None), None)

    async def cancel(self, transfer_id: str) -> CancelResponse | None:
        answers, _ = await self.ask_peers(wire.CancelQuery(transfer_id), wire.Found)
        return next((a.cancelled for a in answers if a.cancelled is not None), None)

    async def active_uploads(self) -> BusyUploads | None:
        """The multipart uploads the other workers work on or are creating; None if a
        running one did not answer in time (then nobody may be declared idle)."""
        answers, timed_out = await self.ask_peers(wire.ActiveUploadsQuery(), wire.ActiveUploads)
        if timed_out:
            return None
        found = BusyUploads()
        for answer in answers:
            found |= BusyUploads(
                frozenset(answer.upload_ids),
                frozenset((created.bucket, created.key) for created in answer.creating),
            )
        return found


def read_worker_input() -> dict[str, Any]:
    """The first line of stdin: the config document and how to serve it."""
    line = sys.stdin.buffer.readline()
    if not line:
        raise SystemExit("trio-s3rpc worker: no config on stdin (start it with serve --workers)")
    data = json.loads(line)
    if not isinstance(data, dict):
        raise SystemExit("trio-s3rpc worker: stdin does not hold a config object")
    return data


async def watch_lifeline(on_lost: Callable[[], Awaitable[None] | None]) -> None:
    """Wait for EOF on stdin (the supervisor is gone), then call ``on_lost``."""
    stream = trio.lowlevel.FdStream(os.dup(0))
    async with stream:
        while True:
            try:
                data = await stream.receive_some(4096)
            except (trio.BrokenResourceError, OSError):
                data = b""
            if not data:
                break
    result = on_lost()
    if result is not None:
        await result


def run_dir_is_private(path: str) -> bool:
    info = Path(path).stat()
    return info.st_uid == os.getuid() and info.st_mode & 0o077 == 0
