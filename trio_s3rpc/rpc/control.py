"""Watching and stopping calls: ``transfer_id``, ``timeout``, and what TransferStatus
and Cancel (in ``methods.py``) read and stop.

Any call may carry ``transfer_id`` (a client-chosen string) and ``timeout``
(seconds). The dispatcher runs such a call inside :meth:`CallControl.run`,
which gives it a cancel scope, a deadline and a :class:`Progress` that
``s3.TransferStatus`` reads from any connection. ``s3.Cancel`` cancels the
scope; cancellation flows down to the part tasks, and each multipart upload
aborts itself on the way out. Finished transfers stay visible for a while,
bounded in number, so a poll that comes just after the end still sees it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from trio_s3rpc import progress as progress_module
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.progress import Progress

T = TypeVar("T")

KEEP_FINISHED_SECONDS = 900.0
MAX_TRACKED = 10_000
MAX_TRANSFER_ID = 200


@dataclass(slots=True)
class Transfer:
    transfer_id: str
    method: str
    started_at: float
    scope: trio.CancelScope
    progress: Progress = field(default_factory=Progress)
    state: str = "running"  # running | completed | failed | cancelled | timed_out
    finished_at: float = 0.0
    cancel_requested: bool = False


def call_options(args: Mapping[str, Any]) -> tuple[str, float | None]:
    """The ``transfer_id`` and ``timeout`` a call carries, validated."""
    transfer_id = args.get("transfer_id", "")
    if transfer_id is None:
        transfer_id = ""
    if not isinstance(transfer_id, str) or len(transfer_id) > MAX_TRANSFER_ID:
        raise RPCError(
            ErrorCode.INVALID_REQUEST,
            f"field 'transfer_id' must be a string of at most {MAX_TRANSFER_ID} characters",
        )
    timeout = args.get("timeout")
    if timeout is not None:
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise RPCError(
                ErrorCode.INVALID_REQUEST, "field 'timeout' must be a positive number of seconds"
            )
        timeout = float(timeout)
    return transfer_id, timeout


class CallControl:
    """The registry of tracked transfers."""

    def __init__(self) -> None:
        self._transfers: OrderedDict[str, Transfer] = OrderedDict()
        self._last_sweep = 0.0

    async def run(
        self,
        method: str,
        transfer_id: str,
        time_limit: float | None,
        call: Callable[[], Awaitable[T]],
    ) -> T:
        """Run ``call`` under its transfer's scope, deadline and progress."""
        self._forget_old()
        existing = self._transfers.get(transfer_id) if transfer_id else None
        if existing is not None and existing.state == "running":
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                "a running transfer already has this transfer_id",
                f"transfer_id: {transfer_id}",
            )
        scope = trio.CancelScope()
        if time_limit is not None:
            scope.relative_deadline = time_limit
        transfer = Transfer(transfer_id, method, time.time(), scope)
        if transfer_id:
            self._transfers.pop(transfer_id, None)
            self._transfers[transfer_id] = transfer
        token = progress_module.track(transfer.progress)
        try:
            with scope:
                result = await call()
                transfer.state = "completed"
                return result
            # Only reached when the scope swallowed its own cancellation.
            if transfer.cancel_requested:
                transfer.state = "cancelled"
                raise RPCError(
                    ErrorCode.CANCELLED,
                    f"{method} was cancelled by s3.Cancel",
                    f"transfer_id: {transfer_id}",
                )
            transfer.state = "timed_out"
            raise RPCError(
                ErrorCode.OPERATION_TIMEOUT,
                f"{method} did not finish within its timeout of {time_limit:g} s",
                f"transfer_id: {transfer_id}" if transfer_id else "",
            )
        except BaseException:
            if transfer.state == "running":
                transfer.state = "failed"
            raise
        finally:
            progress_module.untrack(token)
            transfer.finished_at = time.time()

    def status(self, transfer_id: str) -> Transfer:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                "no transfer with this transfer_id is running or recently finished",
                f"transfer_id: {transfer_id}",
            )
        return transfer

    def cancel(self, transfer_id: str) -> bool:
        """Cancel a running transfer; False when it had already finished."""
        transfer = self.status(transfer_id)
        if transfer.state != "running":
            return False
        transfer.cancel_requested = True
        transfer.scope.cancel()
        return True

    def _forget_old(self) -> None:
        """Drop finished transfers past their retention, and the oldest past the cap."""
        now = time.time()
        if len(self._transfers) < MAX_TRACKED and now - self._last_sweep < 60:
            return
        self._last_sweep = now
        horizon = now - KEEP_FINISHED_SECONDS
        excess = len(self._transfers) - MAX_TRACKED + 1
        stale = []
        for transfer_id, transfer in self._transfers.items():
            if transfer.state == "running":
                continue
            if transfer.finished_at < horizon or excess > 0:
                stale.append(transfer_id)
                excess -= 1
        for transfer_id in stale:
            del self._transfers[transfer_id]
