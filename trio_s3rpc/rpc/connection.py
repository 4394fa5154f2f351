"""One client connection: a reader, concurrent calls, whole answers.

A connection's socket is registered with the server's
:class:`~trio_s3rpc.poller.Poller`, which calls :meth:`Connection.readable`
when bytes arrive: the reader reads what is there, feeds the sans-IO frame
decoder, answers at once the methods that never wait on I/O (ListBuckets,
GetPublicURL) and starts a task for every other call in the connection's own
nursery. It never awaits, and no task waits per read: for a connection whose
calls are short answers, a task woken per read cost a third of the call. A
connection's calls run concurrently and their answers leave in whatever order
they finish (:class:`~trio_s3rpc.nbio.Sender` keeps each answer whole).

The reader pauses (the poller stops reporting the socket, whose bytes wait in
the kernel and push back on the client) while the calls in flight are at
``s3.max_in_flight``, while the connection's memory share is spent, and while
an inline answer the socket did not take whole is being written; what ended
the pause starts it again. :meth:`Connection.run` holds the nursery and the
time limits (a frame begun must be whole within ``s3.frame_timeout``, an idle
connection closes after ``s3.idle_timeout``).

With ``s3.relay`` set, a call for any service other than ``s3`` is handed,
frame and all, to the :class:`~trio_s3rpc.rpc.relay.Relay`, which forwards it
to RoadRunner's own RPC; it counts against the same in-flight bound and
shutdown grace as a local call. Without a relay that check is one attribute
test per frame.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trio_s3rpc import callers, nbio
from trio_s3rpc.budget import (
    COUNTED_FROM,
    FLOOR,
    Hold,
    MemoryBudget,
    Share,
    current_hold,
    default_memory_limit,
)
from trio_s3rpc.config import RPCSettings
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.goridge.frame import (
    Frame,
    FrameDecoder,
    FrameError,
    RPCRequest,
    encode_rpc_error,
)
from trio_s3rpc.poller import Poller
from trio_s3rpc.rpc.dispatch import Dispatcher
from trio_s3rpc.rpc.registry import Method
from trio_s3rpc.rpc.relay import Relay

log = logging.getLogger("trio_s3rpc.rpc")

RECEIVE_SIZE = 256 * 1024
_SHUTDOWN_ANSWER_TIMEOUT = 1.0
# A share holding at most this may always read RECEIVE_SIZE more (under FLOOR).
_ROOM_ALWAYS = FLOOR - RECEIVE_SIZE
# Why a connection's reader stopped for a while.
_PAUSED_CALLS = "calls"  # its calls in flight are at s3.max_in_flight
_PAUSED_ROOM = "room"  # its memory share (or the process's budget) is spent
_PAUSED_SENDING = "sending"  # an inline answer is still being written


def budget_for(settings: RPCSettings, workers: int = 1) -> MemoryBudget:
    """The process's memory budget from ``s3.memory_limit`` and ``s3.connection_memory``
    (unset: a quarter of the machine's memory shared among the workers, and a quarter
    of that per connection)."""
    limit = settings.memory_limit or default_memory_limit(workers)
    return MemoryBudget(limit, settings.connection_memory or limit // 4)


class Connection:
    """One client connection: reader, concurrent calls, serialized writes."""

    def __init__(
        self,
        stream: trio.SocketStream,
        dispatcher: Dispatcher,
        settings: RPCSettings,
        peer: str,
        connection_id: int,
        relay: Relay | None = None,
        share: Share | None = None,
        *,
        poller: Poller,
    ) -> None:
        self._stream = stream
        self._dispatcher = dispatcher
        self._relay = relay
        self._poller = poller
        self._share = share if share is not None else budget_for(settings).share()
        # A frame larger than the connection's share could never be whole: refused
        # as soon as its header arrives, before any of its payload is held.
        self._decoder = FrameDecoder(min(settings.max_frame_size, self._share.limit))
        # With a relay, a call for another service goes upstream as its frame came.
        decoder = self._decoder
        self._next_call = decoder.next_call if relay is None else decoder.next_call_keeping_frame
        self._inline = dispatcher.registry.inline
        self._max_in_flight = settings.max_in_flight
        self._frame_timeout = settings.frame_timeout
        self._idle_timeout = settings.idle_timeout
        self._fd = stream.socket.fileno()
        self._sender = nbio.Sender(stream.socket)
        self._in_flight = 0
        # Bytes read and counted in the share, not yet handed to a call.
        self._receiving = 0
        self._frame_started = 0.0
        self._closing = False
        self._server_stopping = False
        self._client_gone = False
        # Reading has ended: the client left, a frame was refused, or time ran out.
        self._ended = trio.Event()
        # Why reading stopped for now (_PAUSED_*), or "" while it goes on.
        self._paused = ""
        # A call read while the calls in flight were at their bound, started first.
        self._held: tuple[RPCRequest, Hold, Method[Any, Any] | None, Frame | None] | None = None
        # When run() stops waiting: a frame's time is up, or the idle timeout.
        self._deadline = math.inf
        self._nursery: trio.Nursery | None = None
        self._context: contextvars.Context | None = None
        self._read_scope = trio.CancelScope()
        self._wait_scope = trio.CancelScope()
        self._room_wait: trio.CancelScope | None = None
        self.peer = peer
        self.id = connection_id
        self.frame_refused = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def idle(self) -> bool:
        return self._in_flight == 0 and self._decoder.buffered == 0

    def close_when_idle(self) -> None:
        """Stop reading once no call is in flight and no frame is half received."""
        self._closing = True
        self._server_stopping = True
        if self.idle:
            self._read_scope.cancel()

    async def run(self) -> None:
        """Serve the connection until the client leaves, errs, or shutdown idles it.

        The poller calls :meth:`readable` when the socket has bytes; this task
        holds the connection's nursery, where its calls run, and its time limits.
        Cancellation (the server's shutdown deadline) cancels every call on the
        connection; each tries to answer ``SHUTTING_DOWN`` first.
        """
        # Every call of this connection runs as (a copy of) this task's context:
        # the reader runs in it too, whichever task the poller calls it from.
        callers.enter(callers.of_socket(self._stream.socket))
        self._context = contextvars.copy_context()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                with self._read_scope:
                    self._poller.register(self._fd, self)
                    try:
                        await self._wait_until_ended()
                    finally:
                        self._poller.unregister(self._fd)
                        self._ended.set()
                        if self._room_wait is not None:
                            self._room_wait.cancel()
                if self._client_gone:
                    # A client that hangs up cancels its calls: nobody will
                    # read their answers, and their uploads must be aborted.
                    nursery.cancel_scope.cancel()
        finally:
            self._poller.unregister(self._fd)
            self._share.release(self._receiving)
            self._receiving = 0
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    async def _wait_until_ended(self) -> None:
        """Wait while the poller reads; close the connection when a time limit passes."""
        while not self._ended.is_set():
            with trio.CancelScope(deadline=self._deadline) as scope:
                self._wait_scope = scope
                await self._ended.wait()
            if scope.cancelled_caught:
                self._timed_out()
                return

    def _set_deadline(self, deadline: float) -> None:
        if deadline != self._deadline:
            self._deadline = deadline
            self._wait_scope.deadline = deadline

    def _update_deadline(self) -> None:
        """A frame begun must be whole in s3.frame_timeout (while reading goes on or
        waits for memory), an idle connection closes after s3.idle_timeout."""
        if self._paused and self._paused != _PAUSED_ROOM:
            self._set_deadline(math.inf)  # waiting on this server, not on the client
        elif self._decoder.buffered:
            self._set_deadline(self._frame_started + self._frame_timeout)
        elif self._idle_timeout and self._in_flight == 0:
            self._set_deadline(trio.current_time() + self._idle_timeout)
        else:
            self._set_deadline(math.inf)

    def _timed_out(self) -> None:
        if self._decoder.buffered:
            log.warning(
                "event=frame_timeout connection=%d peer=%s received=%d seconds=%s; "
                "closing connection",
                self.id,
                self.peer,
                self._decoder.buffered,
                self._frame_timeout,
            )
        else:
            log.info(
                "event=idle_timeout connection=%d peer=%s seconds=%s; closing connection",
                self.id,
                self.peer,
                self._idle_timeout,
            )
        self._client_gone = True
        self._end()

    def _end(self) -> None:
        """Reading is over: the poller forgets the socket, run() closes the connection."""
        self._poller.unregister(self._fd)
        self._ended.set()

    # The reader. The poller calls readable() (in the poller's task, or the task of
    # the call whose end let a paused reader go on); it reads what is there, answers
    # the calls that never wait on I/O at once and starts a task for each other one,
    # and never awaits. Run in the connection's context (for callers and the tasks
    # it starts).

    def readable(self) -> None:
        assert self._context is not None
        self._context.run(self._read)

    def failed(self, exc: BaseException) -> None:
        """The reader raised (a bug, logged by the poller): close the connection."""
        self._client_gone = True
        self._end()

    def _read(self) -> None:
        if self._paused or self._ended.is_set():
            return
        fd = self._fd
        share = self._share
        for _ in range(nbio.YIELD_EVERY):
            # Under the floor there is always room: one comparison on the hot path.
            if share.in_use > _ROOM_ALWAYS and not share.has_room(RECEIVE_SIZE):
                # Answers unsent and calls' bytes fill the share, or the process's
                # budget is spent: wait (without reading) for room.
                self._pause(_PAUSED_ROOM)
                self._start(self._wait_for_room)
                break
            try:
                data = os.read(fd, RECEIVE_SIZE)  # nbio.read_now, without its call
            except BlockingIOError:
                break
            except OSError:
                data = b""  # reset: the client is gone, as at the end of the stream
            if not data:
                self._client_gone = True
                self._end()
                return
            was_empty = not self._decoder.buffered
            self._decoder.receive_data(data)
            parsed = self._serve_frames()
            self._after_frames(was_empty, parsed)
            if self._paused or self._ended.is_set() or len(data) < RECEIVE_SIZE:
                # A short read emptied the socket: a caller waiting for its answer
                # sends nothing more (a read that fails costs a system call and
                # an exception).
                break
        # Else more may be there: the poller reports the socket again next time.
        self._update_deadline()

    def _after_frames(self, was_empty: bool, parsed: bool) -> None:
        buffered = self._decoder.buffered
        if buffered >= COUNTED_FROM or self._receiving:
            # What is buffered of a frame not yet whole, counted as it arrives
            # (never the size its header announces).
            self._count_receiving(buffered)
        if buffered and (was_empty or parsed):
            self._frame_started = trio.current_time()

    def _serve_frames(self) -> bool:
        """Answer or start every whole call the decoder holds, until reading must
        pause or end; whether any frame was taken."""
        decoder = self._decoder
        next_call = self._next_call
        dispatcher = self._dispatcher
        parsed = False
        while True:
            try:
                request = next_call()
            except FrameError as exc:
                log.warning(
                    "event=bad_frame connection=%d peer=%s error=%r; closing connection",
                    self.id,
                    self.peer,
                    str(exc),
                )
                self.frame_refused = True
                self._client_gone = True
                self._end()
                return parsed
            if request is None:
                return parsed
            parsed = True
            if isinstance(request, Frame):
                # Control frames (stream PING/STOP) carry no call; nothing to answer.
                if not decoder.buffered:
                    return parsed
                continue
            # A large frame's payload passes to its call, held until it is
            # answered; small ones are not counted (budget.COUNTED_FROM).
            size = decoder.last_payload
            relayed = None
            method = None
            if self._relay is not None and not request.method.startswith("s3."):
                relayed = decoder.last_frame
                assert relayed is not None
            else:
                method = self._inline.get(request.method)
                if method is not None and method.now is not None and size < COUNTED_FROM:
                    # Methods that never wait on I/O are answered right here: a task
                    # per call would cost more than the call itself. None: a call
                    # under transfer_id or timeout, which runs as a task.
                    answer = dispatcher.answer_now(request, method)
                    if answer is not None:
                        if not self._answer(answer):
                            return parsed
                        if (self._closing or self._idle_timeout) and self.idle:
                            self._now_idle()
                        if not decoder.buffered:
                            return parsed  # the read held whole frames: nothing to ask
                        continue
            hold = Hold(self._share) if size < COUNTED_FROM else self._hold(size)
            if self._in_flight >= self._max_in_flight:
                # Backpressure: stop reading until a call finishes.
                self._held = (request, hold, method, relayed)
                self._pause(_PAUSED_CALLS)
                return parsed
            self._in_flight += 1
            self._start(self._serve_call, request, hold, method, relayed)
            if not decoder.buffered:
                return parsed

    def _answer(self, answer: bytes) -> bool:
        """Send an inline call's answer; False when reading must stop: the client is
        gone, or the socket took only part of it (the rest goes in a task, and
        reading waits for it, as a caller that does not read its answers must)."""
        try:
            sent = self._sender.send_now(answer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._gone()
            return False
        if sent == len(answer):
            return True
        self._pause(_PAUSED_SENDING)
        self._in_flight += 1
        self._start(self._finish_answer, answer, sent)
        return False

    async def _finish_answer(self, answer: bytes, sent: int) -> None:
        try:
            await self._sender.send_rest(answer, sent)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._gone()
        finally:
            self._in_flight -= 1
            self._go_on(_PAUSED_SENDING)

    async def _wait_for_room(self) -> None:
        with trio.CancelScope() as self._room_wait:
            await self._share.wait_for_room(1)
        self._room_wait = None
        self._go_on(_PAUSED_ROOM)

    def _start(self, function: Callable[..., Awaitable[None]], *args: Any) -> None:
        """A task in the connection's nursery, in the connection's context."""
        assert self._nursery is not None
        self._nursery.start_soon(function, *args)

    def _pause(self, why: str) -> None:
        self._paused = why
        self._poller.pause(self._fd)

    def _go_on(self, why: str) -> None:
        """What paused the reader is over (``why``): serve the frames it left, read on."""
        if self._paused != why or self._ended.is_set():
            return
        assert self._context is not None
        self._context.run(self._resume)

    def _resume(self) -> None:
        self._paused = ""
        held, self._held = self._held, None
        if held is not None:
            self._in_flight += 1
            self._start(self._serve_call, *held)
        if self._decoder.buffered:
            self._serve_frames()
            self._after_frames(False, True)
        if not self._paused and not self._ended.is_set():
            self._poller.resume(self._fd)
            # Bytes read before the pause are served; the socket's, the poller reports.
        self._update_deadline()
        if (self._closing or self._idle_timeout) and self.idle:
            self._now_idle()

    def _count_receiving(self, buffered: int) -> None:
        if buffered > self._receiving:
            self._share.force(buffered - self._receiving)
        elif buffered < self._receiving:
            self._share.release(self._receiving - buffered)
        self._receiving = buffered

    def _hold(self, payload_size: int) -> Hold:
        """A new call's hold: its frame's payload when it is counted."""
        if payload_size < COUNTED_FROM:
            return Hold(self._share)
        self._share.force(payload_size)
        return Hold(self._share, payload_size)

    def _call_done(self, hold: Hold) -> None:
        if hold.held:
            hold.release_all()
        self._in_flight -= 1
        if self._paused == _PAUSED_CALLS and self._in_flight < self._max_in_flight:
            self._go_on(_PAUSED_CALLS)
        elif (self._closing or self._idle_timeout) and self.idle:
            self._now_idle()

    def _now_idle(self) -> None:
        """No call in flight, no frame begun: close if asked to, or time the idleness."""
        if self._closing:
            self._read_scope.cancel()
        elif not self._paused:
            self._set_deadline(trio.current_time() + self._idle_timeout)

    async def _serve_call(
        self,
        request: RPCRequest,
        hold: Hold,
        method: Method[Any, Any] | None = None,
        relayed: Frame | None = None,
    ) -> None:
        """A call in a task of its own, answered by its method or, given the frame it
        came in (``relayed``), by RoadRunner through the relay. Cut short by a stopping
        server, it is answered SHUTTING_DOWN while the client is there to read it."""
        token = current_hold.set(hold)
        try:
            try:
                if relayed is None:
                    answer = await self._dispatcher.answer(request, method)
                else:
                    assert self._relay is not None
                    answer = await self._relay.forward(relayed, request)
            except trio.Cancelled:
                if self._server_stopping and not self._client_gone:
                    await self._answer_shutting_down(request)
                raise
            if len(answer) >= COUNTED_FROM:
                hold.at_least(len(answer))
            try:
                await self._sender.send(answer)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._gone()
        finally:
            current_hold.reset(token)
            self._call_done(hold)

    async def _answer_shutting_down(self, request: RPCRequest) -> None:
        error = RPCError(
            ErrorCode.SHUTTING_DOWN,
            "the server stopped before this call finished",
            f"method: {request.method}",
        )
        frame = encode_rpc_error(request.seq, request.method, request.codec, error.wire_text())
        with trio.CancelScope(shield=True), trio.move_on_after(_SHUTDOWN_ANSWER_TIMEOUT):
            await self._send(frame)

    async def _send(self, frame: bytes) -> None:
        """Write one whole answer; answers never interleave (:class:`nbio.Sender`: most
        answers fit in the socket buffer and leave in one write, without a lock)."""
        try:
            await self._sender.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._gone()

    def _gone(self) -> None:
        """An answer could not be sent: the client is gone. Stop reading; run()
        cancels the other calls."""
        self._client_gone = True
        self._end()
