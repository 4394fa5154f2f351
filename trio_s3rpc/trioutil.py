"""Helpers for trio's structured concurrency, shared by every layer.

A nursery whose tasks fail together raises an exception group; the layers
above want one error to map and report. This module knows trio and nothing
of the package, so ``s3/`` and ``storage/`` use it alike.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator

import trio

log = logging.getLogger("trio_s3rpc")


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


@contextlib.contextmanager
def first_error() -> Iterator[None]:
    """Re-raise the first real failure out of a nursery's exception group.

    Sibling tasks that fail together (every part of an upload losing its
    connection) arrive as a group; the caller wants one error to map and
    report. A failure wins over the cancellations it caused in its siblings.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        chosen = next((e for e in leaves if not isinstance(e, trio.Cancelled)), leaves[0])
        raise chosen from None


async def on_stop_signals(
    signals: AsyncIterator[int], drain: Callable[[], None], stop_now: Callable[[], None]
) -> None:
    """The first SIGINT/SIGTERM calls ``drain`` (a graceful shutdown), each later one
    ``stop_now``; each is logged as the event it starts."""
    count = 0
    async for signum in signals:
        count += 1
        name = signal.Signals(signum).name
        if count == 1:
            log.info("event=signal name=%s action=graceful_shutdown", name)
            drain()
        else:
            log.warning("event=signal name=%s action=stop_now", name)
            stop_now()
