"""One client connection: a reader, concurrent calls, whole answers.

Each connection runs a reader that feeds the sans-IO frame decoder and starts
one task per request in the connection's own nursery, so a connection's calls
run concurrently and their answers leave in whatever order they finish
(:class:`~trio_s3rpc.nbio.Sender` keeps each answer whole). Methods that never
wait on I/O (ListBuckets, GetPublicURL) are answered by the reader itself,
which saves a task per call on the hottest paths. The calls in flight per
connection are bounded (``s3.max_in_flight``): at the bound the reader stops
reading, and the kernel's buffers push back on the client.

With ``s3.relay`` set, a call for any service other than ``s3`` is handed,
frame and all, to the :class:`~trio_s3rpc.rpc.relay.Relay`, which forwards it
to RoadRunner's own RPC; it counts against the same in-flight bound and
shutdown grace as a local call. Without a relay that check is one attribute
test per frame.
"""

from __future__ import annotations

import logging
import math
import os
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
from trio_s3rpc.rpc.dispatch import Dispatcher
from trio_s3rpc.rpc.registry import Method
from trio_s3rpc.rpc.relay import Relay

log = logging.getLogger("trio_s3rpc.rpc")

RECEIVE_SIZE = 256 * 1024
_SHUTDOWN_ANSWER_TIMEOUT = 1.0
# A share holding at most this may always read RECEIVE_SIZE more (under FLOOR).
_ROOM_ALWAYS = FLOOR - RECEIVE_SIZE


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
    ) -> None:
        self._stream = stream
        self._dispatcher = dispatcher
        self._relay = relay
        self._share = share if share is not None else budget_for(settings).share()
        # A frame larger than the connection's share could never be whole: refused
        # as soon as its header arrives, before any of its payload is held.
        self._decoder = FrameDecoder(min(settings.max_frame_size, self._share.limit))
        self._max_in_flight = settings.max_in_flight
        self._frame_timeout = settings.frame_timeout
        self._idle_timeout = settings.idle_timeout
        self._call_finished = trio.Event()
        self._fd = stream.socket.fileno()
        self._sender = nbio.Sender(stream.socket)
        self._in_flight = 0
        # Bytes read and counted in the share, not yet handed to a call.
        self._receiving = 0
        self._closing = False
        self._server_stopping = False
        self._client_gone = False
        self._read_scope = trio.CancelScope()
        # Wakes the reader when the connection falls idle (s3.idle_timeout).
        self._wait_scope = trio.CancelScope()
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

        Cancellation (the server's shutdown deadline) cancels every call on the
        connection; each tries to answer ``SHUTTING_DOWN`` first.
        """
        # Every call of this connection runs as (a copy of) this task's context.
        callers.enter(callers.of_socket(self._stream.socket))
        try:
            async with trio.open_nursery() as nursery:
                with self._read_scope:
                    await self._read_loop(nursery)
                if self._client_gone:
                    # A client that hangs up cancels its calls: nobody will
                    # read their answers, and their uploads must be aborted.
                    nursery.cancel_scope.cancel()
        finally:
            self._share.release(self._receiving)
            self._receiving = 0
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    def _wait_deadline(self, frame_started: float) -> float:
        """When waiting for bytes must end: a frame's time is up, or the idle timeout."""
        if self._decoder.buffered:
            return frame_started + self._frame_timeout
        if self._idle_timeout and self._in_flight == 0:
            return trio.current_time() + self._idle_timeout
        return math.inf

    async def _wait_readable(self, frame_started: float) -> bool:
        """Wait for bytes and for room to hold them; False when a time limit passed."""
        share = self._share
        deadline = self._wait_deadline(frame_started)
        if deadline == math.inf and not self._idle_timeout and share.has_room(1):
            # The common case, kept cheap: nothing to time, room to read.
            await trio.lowlevel.wait_readable(self._fd)
            return True
        with trio.CancelScope(deadline=deadline) as scope:
            self._wait_scope = scope
            # Backpressure: answers unsent and calls' bytes fill the share, or the
            # process's budget is spent; wait (without reading) for room.
            await share.wait_for_room(1)
            await trio.lowlevel.wait_readable(self._fd)
        return not scope.cancelled_caught

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

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        fd = self._fd
        share = self._share
        decoder = self._decoder
        sender = self._sender
        reads = 0
        drained = False
        frame_started = 0.0
        buffered = 0  # what the decoder holds after the last read's frames
        timed = self._idle_timeout > 0
        dispatcher = self._dispatcher
        # With a relay, a call for another service goes upstream as its frame came.
        next_call = decoder.next_call if self._relay is None else decoder.next_call_keeping_frame
        inline_methods = dispatcher.registry.inline
        while True:
            # Under the floor there is always room: one comparison on the hot path.
            if drained or (share.in_use > _ROOM_ALWAYS and not share.has_room(RECEIVE_SIZE)):
                # The last read emptied the socket: a caller that waits for its
                # answer has sent nothing since, so wait before trying (a read
                # that fails costs a system call and an exception per call).
                if buffered or timed or share.in_use > _ROOM_ALWAYS:
                    if not await self._wait_readable(frame_started):
                        self._timed_out()
                        return
                else:
                    await trio.lowlevel.wait_readable(fd)
                reads = 0
            try:
                data = os.read(fd, RECEIVE_SIZE)  # nbio.read_now, without its call
            except BlockingIOError:
                drained = True
                continue
            except OSError:
                data = b""  # reset: the client is gone, as at the end of the stream
            drained = len(data) < RECEIVE_SIZE
            reads += 1
            if reads >= nbio.YIELD_EVERY:
                await trio.lowlevel.checkpoint()
                reads = 0
            if not data:
                self._client_gone = True
                return
            was_empty = not buffered
            decoder.receive_data(data)
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
                    return
                if request is None:
                    break
                parsed = True
                if isinstance(request, Frame):
                    # Control frames (stream PING/STOP) carry no call; nothing to answer.
                    if not decoder.buffered:
                        break
                    continue
                # A large frame's payload passes to its call, held until it is
                # answered; small ones are not counted (budget.COUNTED_FROM).
                size = decoder.last_payload
                if self._relay is not None and not request.method.startswith("s3."):
                    frame = decoder.last_frame
                    assert frame is not None
                    await self._start_relayed(nursery, frame, request, self._hold(size))
                    continue
                method = inline_methods.get(request.method)
                if method is not None and size < COUNTED_FROM:
                    # Methods that never wait on I/O are answered right here (a
                    # call of _serve_inline's, unrolled): a task per call would
                    # cost more than the call itself, and a function call counts.
                    # One that never awaits (method.now) costs no coroutine either.
                    self._in_flight += 1
                    try:
                        answer = None
                        if method.now is not None:
                            answer = dispatcher.answer_now(request, method)
                        if answer is None:
                            answer = await dispatcher.answer(request, method)
                        try:
                            sent = sender.send_now(answer)
                            if sent != len(answer):
                                await sender.send_rest(answer, sent)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            self._gone()
                    finally:
                        # No _call_finished.set(): only this task waits on it.
                        self._in_flight -= 1
                        if (self._closing or self._idle_timeout) and self.idle:
                            self._now_idle()
                    if not decoder.buffered:
                        break  # the read held whole frames: no next_frame() to ask
                    continue
                while self._in_flight >= self._max_in_flight:
                    # Backpressure: stop reading until a call finishes.
                    self._call_finished = trio.Event()
                    await self._call_finished.wait()
                self._in_flight += 1
                hold = Hold(share) if size < COUNTED_FROM else self._hold(size)
                nursery.start_soon(self._serve_call, request, hold, method)
                if not decoder.buffered:
                    break
            buffered = decoder.buffered
            if buffered >= COUNTED_FROM or self._receiving:
                # What is buffered of a frame not yet whole, counted as it arrives
                # (never the size its header announces).
                self._count_receiving(buffered)
            if buffered and (was_empty or parsed):
                frame_started = trio.current_time()

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
        self._call_finished.set()
        if (self._closing or self._idle_timeout) and self.idle:
            self._now_idle()

    def _now_idle(self) -> None:
        """No call in flight, no frame begun: close if asked to, or time the idleness."""
        if self._closing:
            self._read_scope.cancel()
        else:
            self._wait_scope.deadline = trio.current_time() + self._idle_timeout

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

    async def _start_relayed(
        self, nursery: trio.Nursery, frame: Frame, request: RPCRequest, hold: Hold
    ) -> None:
        while self._in_flight >= self._max_in_flight:
            self._call_finished = trio.Event()
            await self._call_finished.wait()
        self._in_flight += 1
        nursery.start_soon(self._serve_call, request, hold, None, frame)

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
        self._read_scope.cancel()
