"""One memory budget for the bytes the server holds for callers (``s3.memory_limit``).

The process's :class:`MemoryBudget` counts the bytes held on callers' behalf:
frames being received, answers not yet sent, the tails of chunked uploads and
the parts of transfers in flight. Each connection draws from it through its
own :class:`Share` (``s3.connection_memory``), so one connection cannot take
the whole budget; each call draws from its connection's share through a
:class:`Hold`, kept until the call's answer has left, so what a call took for
its answer (a Read's body) stays counted while the answer waits for a peer
that does not read.

Work that can wait for room waits (the reader stops reading its connection, a
part waits before it is read); a call that asks for more than a share or the
whole budget could ever hold is refused at once with ``RESOURCE_EXHAUSTED``,
naming the limit. A connection holding less than :data:`FLOOR` may always
read, so a small call on a quiet connection is served whatever the others
hold. When the budget falls idle after a burst, :meth:`MemoryBudget.run`
asks glibc to give the freed memory back to the system (``malloc_trim``),
which it otherwise keeps for reuse; a serving process holds glibc to few
arenas (:func:`limit_malloc_arenas`), as a thread's own arena gives back
little of what it kept.

The calls below storage find the current call's hold through a context
variable (:func:`held`, :func:`keep`), as ``progress.current()`` finds its
transfer: storage and s3 import only this leaf module, never the RPC layer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

import trio

from trio_s3rpc.errors import ErrorCode, RPCError

log = logging.getLogger("trio_s3rpc.memory")

MIB = 1024 * 1024
# What a connection may always hold, whatever the others hold: a small call gets through.
FLOOR = 1 * MIB
# Frames, answers and bodies under this are not counted: counting costs more than
# a small call itself, and what they hold is bounded by s3.max_in_flight per
# connection and s3.max_connections.
COUNTED_FROM = 64 * 1024
# A burst above this, followed by an idle budget, is trimmed back to the system.
TRIM_AFTER = 32 * MIB
# "Idle": what may still be held while the budget counts as fallen idle.
IDLE_BELOW = 4 * MIB
# From falling idle to the trim: the burst's last buffers are freed by then, and
# bursts in a row share one trim.
TRIM_DELAY = 1.0


def default_memory_limit(workers: int = 1) -> int:
    """A quarter of the memory this process may use (its cgroup's limit, else the
    machine's), shared among ``workers`` processes, and at least 256 MiB."""
    total = _machine_memory()
    cgroup = _cgroup_limit()
    if cgroup is not None:
        total = min(total, cgroup)
    return max(256 * MIB, total // 4 // max(1, workers))


def _machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4096 * MIB


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def exhausted(what: str, needed: int, limit: int, key: str) -> RPCError:
    """The refusal of work that could never fit: it names the limit and its key."""
    return RPCError(
        ErrorCode.RESOURCE_EXHAUSTED,
        f"{what} needs {needed} bytes at once, more than {key} allows ({limit} bytes)",
        "retry with smaller pieces, or raise the limit",
    )


# glibc's mallopt parameter for the number of malloc arenas.
_M_ARENA_MAX = -8
# The main arena and one for all threads. With glibc's default (8 per core) each
# thread that reads file parts gets an arena of its own, and keeps in it what it
# freed where malloc_trim gives little back (README, Performance).
MALLOC_ARENAS = 2


def _libc_function(name: str) -> Callable[..., int] | None:
    """A function of glibc's, or None on another C library."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        function: Callable[..., int] = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    return function


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on another C library."""
    return _libc_function("malloc_trim")


def limit_malloc_arenas() -> None:
    """Hold glibc to :data:`MALLOC_ARENAS` arenas, unless ``MALLOC_ARENA_MAX`` in the
    environment says how many; called before the process starts a thread (arenas
    already taken stay)."""
    mallopt = _libc_function("mallopt")
    if mallopt is not None and "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


class MemoryBudget:
    """The bytes held for callers, process-wide; see the module's docstring."""

    def __init__(
        self,
        limit: int,
        connection_share: int,
        *,
        trim: bool = True,
    ) -> None:
        self.limit = limit
        self.connection_share = min(connection_share, limit)
        self.in_use = 0
        self.peak = 0
        self._since_trim = 0  # the most held since the last trim
        self._lot = trio.lowlevel.ParkingLot()
        self._idle_after_burst = trio.Event()
        # glibc's malloc_trim, unless asked not to (or another C library).
        self._trim = _load_malloc_trim() if trim else None
        self.trims = 0

    def share(self) -> Share:
        """A new connection's share of the budget."""
        return Share(self, self.connection_share)

    def has_room(self, size: int) -> bool:
        return self.in_use + size <= self.limit

    def force(self, size: int) -> None:
        """Count bytes already held (they exist; there is nothing to wait for)."""
        self.in_use += size
        if self.in_use > self.peak:
            self.peak = self.in_use
        if self.in_use > self._since_trim:
            self._since_trim = self.in_use

    def release(self, size: int) -> None:
        self.in_use -= size
        if self._lot:
            self._lot.unpark_all()
        if self.in_use < IDLE_BELOW and self._since_trim >= TRIM_AFTER:
            self._idle_after_burst.set()

    async def wait_for_change(self) -> None:
        """Sleep until some bytes are released."""
        await self._lot.park()

    def take_now(self, size: int, what: str) -> None:
        """Count ``size`` more bytes if they fit now; refuse (retryably) if not."""
        if size > self.limit:
            raise exhausted(what, size, self.limit, "s3.memory_limit")
        if not self.has_room(size):
            raise RPCError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"{what} needs {size} bytes and the server holds {self.in_use} of its "
                f"{self.limit} (s3.memory_limit) for other callers",
                "retry later",
            )
        self.force(size)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Give freed memory back to the system each time the budget falls idle after a
        burst, until cancelled. The trim runs in a thread: it walks the whole heap."""
        task_status.started()
        if self._trim is None:
            await trio.sleep_forever()
        trim = self._trim
        assert trim is not None
        while True:
            await self._idle_after_burst.wait()
            # Twice: what the burst's callers free after the first trim (buffers
            # of connections, the threads' last results) goes back with the second.
            for _ in range(2):
                await trio.sleep(TRIM_DELAY)
                if self.in_use >= IDLE_BELOW:
                    break
                self._idle_after_burst = trio.Event()
                self._since_trim = self.in_use
                await trio.to_thread.run_sync(trim, 0)
                self.trims += 1
            log.debug("event=memory_trimmed held=%d peak=%d", self.in_use, self.peak)


class Share:
    """One connection's part of the budget: the bytes it receives and its calls hold."""

    __slots__ = ("budget", "in_use", "limit")

    def __init__(self, budget: MemoryBudget, limit: int) -> None:
        self.budget = budget
        self.limit = limit
        self.in_use = 0

    def force(self, size: int) -> None:
        self.in_use += size
        self.budget.force(size)

    def release(self, size: int) -> None:
        self.in_use -= size
        self.budget.release(size)

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit in this share and in the budget (or under FLOOR)."""
        if self.in_use + size <= FLOOR:
            return True
        return self.in_use + size <= self.limit and self.budget.has_room(size)

    def check(self, size: int, what: str) -> None:
        """Refuse at once what this share or the budget could never hold."""
        if size > self.limit:
            key = "s3.connection_memory" if self.limit < self.budget.limit else "s3.memory_limit"
            raise exhausted(what, size, self.limit, key)

    async def wait_for_room(self, size: int) -> None:
        """Wait until ``size`` more bytes fit (see :meth:`has_room`); cancellable."""
        while not self.has_room(size):
            await self.budget.wait_for_change()

    async def take(self, size: int, what: str) -> None:
        self.check(size, what)
        await self.wait_for_room(size)
        self.force(size)


class Hold:
    """What one call holds of its connection's share, released when it is answered."""

    __slots__ = ("held", "share")

    def __init__(self, share: Share, held: int = 0) -> None:
        self.share = share
        self.held = held

    async def take(self, size: int, what: str) -> None:
        await self.share.take(size, what)
        self.held += size

    def give_back(self, size: int) -> None:
        self.held -= size
        self.share.release(size)

    def at_least(self, size: int) -> None:
        """Count the call as holding at least ``size`` bytes (its answer, once built)."""
        if size > self.held:
            self.share.force(size - self.held)
            self.held = size

    def release_all(self) -> None:
        if self.held:
            self.share.release(self.held)
            self.held = 0


current_hold: ContextVar[Hold | None] = ContextVar("current_hold", default=None)


async def keep(size: int, what: str) -> None:
    """Take ``size`` bytes for the current call, kept until its answer has left.

    Outside a call (nothing holds a budget) this does nothing.
    """
    hold = current_hold.get()
    if hold is not None:
        await hold.take(size, what)


@asynccontextmanager
async def held(size: int, what: str) -> AsyncIterator[None]:
    """Hold ``size`` bytes for the current call while the block runs (a part in flight)."""
    hold = current_hold.get()
    if hold is None:
        yield
        return
    await hold.take(size, what)
    try:
        yield
    finally:
        hold.give_back(size)
