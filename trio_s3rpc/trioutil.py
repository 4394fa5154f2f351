"""Helpers for trio's structured concurrency, shared by every layer.

A nursery whose tasks fail together raises an exception group; the layers
above want one error to map and report. This module knows trio and nothing
of the package, so ``s3/`` and ``storage/`` use it alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import trio


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
