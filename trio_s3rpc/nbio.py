"""Non-blocking socket I/O: each read and write is tried first, and waits only if it must.

The RPC server's connections, the relay's upstream connections and the plain
HTTP/1.1 connections to S3 read and write their sockets through here rather
than through trio's stream layer, whose every successful ``receive_some`` or
``send_all`` is a trip through the scheduler. A socket that is ready costs one
system call; only one that is not waits in ``trio.lowlevel.wait_readable`` or
``wait_writable``. The socket must be non-blocking (trio's sockets are, and so
is one detached from them).

The errors are trio's, as its streams raise them, so that callers map them in
one place: ``trio.BrokenResourceError`` for a socket the system refuses (reset,
broken pipe, closed descriptor), ``trio.ClosedResourceError`` for one closed
(``notify_closing``) while a task waited on it, and ``trio.TooSlowError`` for
a single wait that outlasted its ``timeout``. A read at the end of the stream
answers ``b""``.

Cancellation. :func:`read_now` and :func:`write_now` never wait and are no
checkpoints. The async functions are checkpoints only where they wait: a
socket that is ready answers at once, so that a fast peer costs no scheduling.
:meth:`Receiver.receive_some` therefore checkpoints after every
:data:`YIELD_EVERY` reads in a row that did not wait, so a loop over a stream
that is always ready still lets other tasks run and sees its cancellation. A
read cancelled while it waits has taken nothing. A write cancelled while it
waits has written part of its data, which is why :class:`Sender` can shield
the rest of a message.

Turns (:class:`Sender`). Several tasks write whole messages to one socket,
which must never interleave. A message the socket takes whole at the first try
needs nothing more. One it takes only part of (or none of) holds the sender's
turn from that moment, before anything is awaited, until its writer has
written the rest, so the writer may even be a task started later (the
connection's reader hands an answer's rest to one); messages that come
meanwhile wait for their turn in the order they came, and the turn passes
straight from one to the next.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

YIELD_EVERY = 16
"""Reads in a row that did not wait, after which :meth:`Receiver.receive_some` checkpoints."""


class Socket(Protocol):
    """Anything with a descriptor: a ``socket.socket`` or a ``trio.socket.SocketType``.

    The descriptor is asked anew for every attempt (a closed socket answers -1,
    which the system refuses), never kept across a wait.
    """

    def fileno(self) -> int: ...


def read_now(fd: int, max_bytes: int) -> bytes | None:
    """Up to ``max_bytes`` that are there now: ``None`` if there are none yet, ``b""`` at
    the end of the stream. Other failures raise ``OSError``: a reader decides whether a
    reset connection is an error or the peer's leaving."""
    try:
        return os.read(fd, max_bytes)
    except BlockingIOError:
        return None


def write_now(fd: int, data: bytes | memoryview) -> int:
    """How much of ``data`` the socket takes now (0 when it takes none); a socket the
    system refuses raises ``trio.BrokenResourceError``."""
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError as exc:
        raise trio.BrokenResourceError(str(exc) or type(exc).__name__) from exc


async def _wait(
    wait: Callable[[Socket], Awaitable[None]],
    sock: Socket,
    timeout: float,  # noqa: ASYNC109
    message: str,
) -> None:
    if timeout == math.inf:
        await wait(sock)
        return
    with trio.move_on_after(timeout) as waiting:
        await wait(sock)
    if waiting.cancelled_caught:
        raise trio.TooSlowError(message)


async def send_all(
    sock: Socket,
    data: bytes | memoryview,
    *,
    timeout: float = math.inf,  # noqa: ASYNC109
) -> None:
    """Write all of ``data``, waiting for room only while the socket is full.

    ``timeout`` bounds each wait, not the whole write: a peer that reads slowly
    but steadily is not one that stopped reading. Cancelled while it waits, the
    data is written in part.
    """
    view = memoryview(data)
    while True:
        sent = write_now(sock.fileno(), view)
        if sent == len(view):
            return
        view = view[sent:]
        await _wait(
            trio.lowlevel.wait_writable, sock, timeout, f"could not write within {timeout} s"
        )


class Receiver:
    """The reads of one socket by one task, each tried before it waits."""

    __slots__ = ("_reads", "_sock")

    def __init__(self, sock: Socket) -> None:
        self._sock = sock
        self._reads = 0

    async def receive_some(
        self,
        max_bytes: int,
        *,
        timeout: float = math.inf,  # noqa: ASYNC109
        wait_first: bool = False,
    ) -> bytes:
        """Up to ``max_bytes``, ``b""`` at the end of the stream.

        ``wait_first`` when nothing can be there yet (the answer to a request
        just sent): the read that would fail is not tried. ``timeout`` bounds
        the wait. A connection the peer reset raises ``trio.BrokenResourceError``.
        """
        sock = self._sock
        if not wait_first:
            data = _read(sock, max_bytes)
            if data is not None:
                self._reads += 1
                if self._reads >= YIELD_EVERY:
                    self._reads = 0
                    await trio.lowlevel.checkpoint()
                return data
        while True:
            self._reads = 0
            await _wait(trio.lowlevel.wait_readable, sock, timeout, f"no data within {timeout} s")
            data = _read(sock, max_bytes)
            if data is not None:
                return data


def _read(sock: Socket, max_bytes: int) -> bytes | None:
    try:
        return read_now(sock.fileno(), max_bytes)
    except OSError as exc:
        raise trio.BrokenResourceError(str(exc) or type(exc).__name__) from exc


class Sender:
    """Whole messages onto one socket from any number of tasks, never interleaved.

    See the module docstring for the turns. A message whose rest could not be
    written (the socket broke, a wait outlasted its timeout, its writer was
    cancelled) leaves the stream cut mid-message: every later :meth:`send`
    raises ``trio.BrokenResourceError`` instead of writing after it.
    """

    __slots__ = ("_broken", "_busy", "_queue", "_sock")

    def __init__(self, sock: Socket) -> None:
        self._sock = sock
        self._broken = False
        # A message is part-way out: its writer holds the turn (or is about to
        # take it, passed on by the one before), and new messages queue.
        self._busy = False
        self._queue = trio.lowlevel.ParkingLot()

    def send_now(self, data: bytes) -> int:
        """Begin a message without waiting: the bytes of ``data`` the socket took at
        once (all of it, most often), or -1 when another message is being written
        and this one must wait its turn. A message not taken whole holds the turn
        from here: its rest must go to :meth:`send_rest`, by this task or another,
        before any other message can be written. :meth:`send`'s first step, with no
        coroutine (the connection's reader answers its inline calls with it)."""
        if self._broken:
            raise trio.BrokenResourceError("a message before this one was cut short")
        if self._busy:
            return -1
        try:  # write_now, without its call
            sent = os.write(self._sock.fileno(), data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc) or type(exc).__name__) from exc
        if sent != len(data):
            self._busy = True
        return sent

    async def send(
        self,
        data: bytes,
        *,
        shield: bool = False,
        timeout: float = math.inf,  # noqa: ASYNC109
    ) -> None:
        """Write the whole of ``data`` after the messages before it.

        With ``shield``, the rest of a message begun is written even if the
        caller is cancelled meanwhile (waiting for its turn is not shielded),
        bounded by ``timeout`` in all: a peer that stops reading that long
        raises ``trio.TooSlowError``. Without it, ``timeout`` bounds each wait.
        """
        sent = self.send_now(data)
        if sent != len(data):
            await self.send_rest(data, sent, shield=shield, timeout=timeout)

    async def send_rest(
        self,
        data: bytes,
        sent: int,
        *,
        shield: bool = False,
        timeout: float = math.inf,  # noqa: ASYNC109
    ) -> None:
        """The rest of a message :meth:`send_now` began (``sent`` bytes of it: its turn
        is held), or the whole of one it could not begin (``sent`` -1: it waits for its
        turn, after the messages before it)."""
        if sent < 0:
            if self._busy:
                # Cancelled here, it never had the turn and passes on nothing.
                await self._queue.park()  # the turn comes straight from the one before
            else:
                self._busy = True
            sent = 0
        try:
            if self._broken:
                raise trio.BrokenResourceError("a message before this one was cut short")
            await self._send_rest(memoryview(data)[sent:], shield, timeout)
        finally:
            if self._queue:
                self._queue.unpark()
            else:
                self._busy = False

    async def _send_rest(
        self,
        rest: memoryview,
        shield: bool,
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        try:
            if shield:
                with trio.CancelScope(shield=True):
                    with trio.fail_after(timeout):
                        await send_all(self._sock, rest)
            else:
                await send_all(self._sock, rest, timeout=timeout)
        except BaseException:
            # Cut mid-message (cancellation too): nothing may follow it on the stream.
            self._broken = True
            raise
