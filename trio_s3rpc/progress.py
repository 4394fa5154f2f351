"""Progress of the transfer the current call is running, wherever the bytes move.

The RPC layer puts a :class:`Progress` in a context variable when a call
carries a ``transfer_id``; the code that moves bytes (multipart uploads,
ranged downloads) reports to :func:`current` without knowing whether anyone
listens. Trio copies the context into the tasks a call starts, so part tasks
report to their call's progress.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(slots=True)
class Progress:
    bytes_done: int = 0
    bytes_total: int = 0
    parts_done: int = 0
    parts_total: int = 0

    def expect(self, total_bytes: int, parts: int) -> None:
        """Announce the size of the transfer (once it is known)."""
        self.bytes_total = total_bytes
        self.parts_total = parts

    def advance(self, transferred: int, parts: int = 0) -> None:
        self.bytes_done += transferred
        self.parts_done += parts


_current: contextvars.ContextVar[Progress | None] = contextvars.ContextVar(
    "trio_s3rpc_progress", default=None
)


def current() -> Progress:
    """The progress of the running call's transfer, or a throwaway one when untracked."""
    progress = _current.get()
    return progress if progress is not None else Progress()


def track(progress: Progress) -> contextvars.Token[Progress | None]:
    return _current.set(progress)


def untrack(token: contextvars.Token[Progress | None]) -> None:
    _current.reset(token)
