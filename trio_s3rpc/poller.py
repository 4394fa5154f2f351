"""Readiness of many sockets served by one task: the RPC server's connections.

trio waits for a socket in ``trio.lowlevel.wait_readable``, one task per
socket: each wait registers the socket with trio's epoll for one event
(``EPOLLONESHOT``), and each event reschedules the task, resumes its
coroutines and returns to the scheduler. For a connection whose every call
is a short answer, that is about a third of the CPU the call costs.

:class:`EpollPoller` keeps each socket registered in an epoll of its own, for
as long as it is open (level-triggered: a socket is reported for as long as
it has bytes to read). One task waits for that epoll in trio (an epoll's
descriptor is itself readable when one of its sockets is) and, for each
socket reported, calls its :class:`Readable`'s ``readable()`` right there:
a reader that reads what is there, answers what it can at once and starts
tasks for the rest, without waiting. A reader that must stop reading for a
while (its calls fill their bound, its memory share is spent, an answer waits
to be written) calls :meth:`~EpollPoller.pause`, and :meth:`~EpollPoller.resume`
when it can go on. At most :data:`MAX_EVENTS` sockets are served per wait, so
the loop's other tasks run between batches, as they do between trio's own.

Where the system has no epoll, :class:`TaskPoller` gives the same interface
with a task per socket waiting in trio (what the server did before).
:func:`open_poller` picks one.
"""

from __future__ import annotations

import contextlib
import logging
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import trio

from trio_s3rpc.errors import internal_error

log = logging.getLogger("trio_s3rpc.rpc")

MAX_EVENTS = 256
"""Sockets served per wait; the rest are reported by the next one."""

HAS_EPOLL = hasattr(select, "epoll")
"""Whether :func:`open_poller` gives an :class:`EpollPoller` (tests set it False)."""


class Readable(Protocol):
    """What a registered socket's owner does when the socket can be read."""

    def readable(self) -> None:
        """Read and handle what is there, without waiting. Must not raise."""

    def failed(self, exc: BaseException) -> None:
        """``readable()`` raised (a bug): close the connection; the poller logged it."""


class Poller(Protocol):
    def register(self, fd: int, owner: Readable) -> None: ...

    def unregister(self, fd: int) -> None: ...

    def pause(self, fd: int) -> None: ...

    def resume(self, fd: int) -> None: ...


def _report(fd: int, owner: Readable, exc: BaseException) -> None:
    internal_error(exc, f"socket reader fd={fd}")  # logged with an incident id
    owner.failed(exc)


class EpollPoller:
    """Sockets in an epoll of their own, read by one task (Linux)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._owners: dict[int, Readable] = {}

    @property
    def registered(self) -> int:
        return len(self._owners)

    def register(self, fd: int, owner: Readable) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._owners[fd] = owner

    def unregister(self, fd: int) -> None:
        """Forget the socket (before it is closed); again is harmless."""
        if self._owners.pop(fd, None) is not None:
            # Already closed: the system dropped it.
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)

    def pause(self, fd: int) -> None:
        """Stop reporting the socket until :meth:`resume` (its bytes stay in the kernel)."""
        if fd in self._owners:
            self._epoll.modify(fd, 0)

    def resume(self, fd: int) -> None:
        if fd in self._owners:
            self._epoll.modify(fd, select.EPOLLIN)

    async def run(self) -> None:
        """Serve the registered sockets until cancelled; then close the epoll."""
        epoll = self._epoll
        owners = self._owners
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                for fd, _ in epoll.poll(0, MAX_EVENTS):
                    # An owner earlier in this batch may have unregistered it.
                    owner = owners.get(fd)
                    if owner is None:
                        continue
                    try:
                        owner.readable()
                    except Exception as exc:
                        self.unregister(fd)
                        _report(fd, owner, exc)
        finally:
            epoll.close()


class TaskPoller:
    """The same interface with one task per socket waiting in trio (no epoll here)."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._scopes: dict[int, trio.CancelScope] = {}
        self._resumed: dict[int, trio.Event] = {}

    @property
    def registered(self) -> int:
        return len(self._scopes)

    def register(self, fd: int, owner: Readable) -> None:
        scope = trio.CancelScope()
        self._scopes[fd] = scope
        self._nursery.start_soon(self._watch, fd, owner, scope)

    def unregister(self, fd: int) -> None:
        scope = self._scopes.pop(fd, None)
        if scope is not None:
            scope.cancel()
        self._resumed.pop(fd, None)

    def pause(self, fd: int) -> None:
        if fd in self._scopes:
            self._resumed.setdefault(fd, trio.Event())

    def resume(self, fd: int) -> None:
        event = self._resumed.pop(fd, None)
        if event is not None:
            event.set()

    async def _watch(self, fd: int, owner: Readable, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                paused = self._resumed.get(fd)
                if paused is not None:
                    await paused.wait()
                    continue
                await trio.lowlevel.wait_readable(fd)
                if fd in self._resumed:
                    continue  # paused meanwhile
                try:
                    owner.readable()
                except Exception as exc:
                    self._scopes.pop(fd, None)
                    _report(fd, owner, exc)
                    return


@asynccontextmanager
async def open_poller() -> AsyncIterator[Poller]:
    """A running poller for the block: epoll where the system has it (:data:`HAS_EPOLL`),
    else a task per socket."""
    async with trio.open_nursery() as nursery:
        poller: EpollPoller | TaskPoller
        if HAS_EPOLL:
            poller = EpollPoller()
            nursery.start_soon(poller.run)
        else:
            poller = TaskPoller(nursery)
        try:
            yield poller
        finally:
            nursery.cancel_scope.cancel()
