"""The relay: calls for services other than ``s3`` forwarded to RoadRunner's RPC.

Beside RoadRunner, the PHP application's one RPC address (``RR_RPC``) is this
server's, and ``s3.relay`` names RoadRunner's own. The connection hands every
call whose service is not ``s3`` to :meth:`Relay.forward` with its frame. Only
what ``s3.relay_services`` names is forwarded (RoadRunner's RPC can start
processes: ``service.Create`` runs any command); anything else answers
``METHOD_NOT_FOUND`` naming the setting, as an unknown method would. The
frame goes upstream as it came (flags, method, argument bytes and stream byte
unchanged, the reserved header byte written as 0) except for its ``seq``, and
the upstream's answer comes back the same way with the caller's ``seq``
restored. Many callers share a few upstream connections (``relay_connections``),
opened on demand and reopened after a failure; Go's net/rpc serves the calls
of one connection concurrently and answers by ``seq``, so each upstream
connection numbers its calls itself and routes answers back by that number.

Every relayed call has a deadline (``relay_timeout``): its arguments pass
through unread, so no call option can bound it. A call that ends (deadline,
caller gone, shutdown) forgets its number, and a late answer is dropped.
Upstream frames go through the sans-IO decoder with ``max_frame_size``; a bad
or oversized one closes that upstream connection only, and the calls waiting
on it answer ``RELAY_UNAVAILABLE`` naming the relay address. :meth:`run`
owns the upstream connections' reader tasks; cancelling it closes them.
"""

from __future__ import annotations

import itertools
import logging
import socket as stdlib_socket
from dataclasses import dataclass, field

import trio

from trio_s3rpc import nbio
from trio_s3rpc.config import ListenAddress, RelaySettings
from trio_s3rpc.errors import ErrorCode, RPCError, internal_error
from trio_s3rpc.goridge.frame import (
    FLAG_CONTROL,
    Frame,
    FrameDecoder,
    FrameError,
    RPCRequest,
    encode_frame,
    encode_rpc_error,
)

log = logging.getLogger("trio_s3rpc.relay")

RECEIVE_SIZE = 256 * 1024
_MAX_SEQ = 0xFFFFFFFF


@dataclass(slots=True, eq=False)
class _Waiter:
    """One forwarded call waiting for its answer (or for its connection's failure)."""

    done: trio.Event = field(default_factory=trio.Event)
    answer: Frame | None = None
    error: RPCError | None = None


class _Upstream:
    """One connection to the upstream RPC server, shared by many callers."""

    def __init__(
        self,
        stream: trio.SocketStream,
        address: ListenAddress,
        settings: RelaySettings,
        max_frame_size: int,
    ) -> None:
        self._stream = stream
        self._sender = nbio.Sender(stream.socket)
        self._address = address
        self._send_timeout = settings.timeout
        self._decoder = FrameDecoder(max_frame_size)
        self._waiting: dict[int, _Waiter] = {}
        self._seqs = itertools.count(1)
        self._reader_scope = trio.CancelScope()
        self.error: RPCError | None = None

    @property
    def load(self) -> int:
        return len(self._waiting)

    @property
    def closed(self) -> bool:
        return self.error is not None

    async def call(self, frame: Frame, caller_seq: int) -> bytes:
        """Send the frame under a number of our own; the answer frame with ``caller_seq``."""
        if self.error is not None:
            raise self.error
        seq = self._next_seq()
        waiter = _Waiter()
        self._waiting[seq] = waiter
        try:
            await self._send(
                encode_frame(frame.flags, (seq, frame.options[1]), frame.payload, frame.stream)
            )
            await waiter.done.wait()
        finally:
            # Whatever ended the call, its number is forgotten: a late answer is dropped.
            self._waiting.pop(seq, None)
        if waiter.error is not None:
            raise waiter.error
        answer = waiter.answer
        assert answer is not None
        return encode_frame(
            answer.flags, (caller_seq, answer.options[1]), answer.payload, answer.stream
        )

    def _next_seq(self) -> int:
        while True:
            seq = next(self._seqs)
            if seq > _MAX_SEQ:
                self._seqs = itertools.count(1)
                continue
            if seq not in self._waiting:
                return seq

    async def _send(self, data: bytes) -> None:
        """Write one whole frame; a caller's cancellation never leaves half of one behind.

        As for answers in the server (:class:`nbio.Sender`), one non-blocking
        write usually takes the whole frame. What remains is written shielded
        (a half-written frame would corrupt every later call on the
        connection) but bounded by the relay timeout: an upstream that stops
        reading that long is closed.
        """
        if self.error is not None:
            raise self.error
        try:
            await self._sender.send(data, shield=True, timeout=self._send_timeout)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.fail("the connection was lost while sending")
        except trio.TooSlowError:
            self.fail("it stopped reading requests")
        if self.error is not None:
            raise self.error

    async def read_loop(self) -> None:
        """Route answers to their callers until the connection ends or :meth:`fail` stops it."""
        try:
            with self._reader_scope:
                await self._read_answers()
        finally:
            self.fail("the relay stopped")
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    async def _read_answers(self) -> None:
        try:
            while True:
                try:
                    data = await self._stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    self.fail("it closed the connection")
                    return
                self._decoder.receive_data(data)
                while (frame := self._decoder.next_frame()) is not None:
                    self._deliver(frame)
        except FrameError as exc:
            log.warning(
                "event=relay_bad_frame address=%s error=%r; closing the upstream connection",
                self._address,
                str(exc),
            )
            self.fail(f"it sent a bad frame ({exc})")

    def _deliver(self, frame: Frame) -> None:
        if frame.flags & FLAG_CONTROL:
            return
        if len(frame.options) != 2:
            raise FrameError(
                f"an RPC answer needs 2 options [seq, method length], got {len(frame.options)}"
            )
        seq, method_length = frame.options
        if method_length > len(frame.payload):
            raise FrameError(
                f"method length {method_length} exceeds the payload of {len(frame.payload)} bytes"
            )
        waiter = self._waiting.get(seq)
        if waiter is None:
            log.debug("event=relay_late_answer address=%s seq=%d", self._address, seq)
            return
        waiter.answer = frame
        waiter.done.set()

    def fail(self, why: str) -> None:
        """Close this connection: every call waiting on it answers RELAY_UNAVAILABLE."""
        if self.error is not None:
            return
        self.error = RPCError(
            ErrorCode.RELAY_UNAVAILABLE,
            f"RoadRunner's RPC at {self._address} (s3.relay) dropped the call: {why}",
        )
        if self._waiting:
            log.warning(
                "event=relay_connection_lost address=%s calls_failed=%d reason=%r",
                self._address,
                len(self._waiting),
                why,
            )
        for waiter in self._waiting.values():
            waiter.error = self.error
            waiter.done.set()
        self._reader_scope.cancel()


class Relay:
    """Forwards frames to ``s3.relay`` over a few shared connections, opened on demand."""

    def __init__(self, settings: RelaySettings, max_frame_size: int) -> None:
        self.settings = settings
        self.address = settings.address
        self._max_frame_size = max_frame_size
        self._upstreams: list[_Upstream] = []
        self._connect_lock = trio.Lock()
        self._connect_attempts = 0
        self._last_connect_error: RPCError | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def pending(self) -> int:
        """Relayed calls waiting for an answer, over every upstream connection."""
        return sum(upstream.load for upstream in self._upstreams)

    @property
    def connection_count(self) -> int:
        return sum(not upstream.closed for upstream in self._upstreams)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the upstream connections until cancelled; then close them all."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for upstream in self._upstreams:
                upstream.fail("this server is stopping")
            self._upstreams.clear()

    async def forward(self, frame: Frame, request: RPCRequest) -> bytes:
        """The answer frame for a call to another service, or an error frame naming the relay.

        Cancellation propagates (the caller answers SHUTTING_DOWN or nothing). A
        method that ``s3.relay_services`` does not name never leaves this server.
        """
        if not self.settings.allows(request.method):
            return encode_rpc_error(
                request.seq, request.method, request.codec, self._refusal(request.method)
            )
        timeout = self.settings.timeout
        try:
            with trio.move_on_after(timeout):
                upstream = await self._choose()
                return await upstream.call(frame, request.seq)
            raise RPCError(
                ErrorCode.OPERATION_TIMEOUT,
                f"RoadRunner's RPC at {self.address} (s3.relay) did not answer "
                f"{request.method} within {timeout:g}s",
                "s3.relay_timeout",
            )
        except RPCError as exc:
            return encode_rpc_error(request.seq, request.method, request.codec, exc.wire_text())
        except Exception as exc:  # a bug: logged with an id, answered without a traceback
            error = internal_error(exc, f"relayed method={request.method}")
            return encode_rpc_error(request.seq, request.method, request.codec, error.wire_text())

    def _refusal(self, method: str) -> str:
        """The answer to a call this relay may not forward, naming the setting."""
        service = method.partition(".")[0]
        return RPCError(
            ErrorCode.METHOD_NOT_FOUND,
            f"unknown method '{method}': not relayed to RoadRunner, {service!r} is not in "
            f"s3.relay_services ({', '.join(self.settings.services)})",
            "name the service or method in s3.relay_services to relay it",
        ).wire_text()

    async def _choose(self) -> _Upstream:
        """The least busy open connection, or a new one while there are fewer than allowed."""
        chosen = self._open_upstream()
        if chosen is not None:
            return chosen
        attempts_seen = self._connect_attempts
        async with self._connect_lock:
            chosen = self._open_upstream()
            if chosen is not None:
                return chosen
            failed = self._last_connect_error
            if self._connect_attempts == attempts_seen or failed is None:
                self._connect_attempts += 1
                try:
                    upstream = await self._connect()
                except RPCError as exc:
                    failed = self._last_connect_error = exc
                else:
                    self._last_connect_error = None
                    self._upstreams.append(upstream)
                    return upstream
            # No new connection (this attempt, or the one made while this call
            # waited, failed; waiting calls share it rather than queue a connect
            # each): keep working on the open ones, if any.
            live = [upstream for upstream in self._upstreams if not upstream.closed]
            if live:
                return min(live, key=lambda upstream: upstream.load)
            raise failed

    def _open_upstream(self) -> _Upstream | None:
        """The least busy open connection, unless another one should be opened."""
        self._upstreams = [upstream for upstream in self._upstreams if not upstream.closed]
        live = self._upstreams
        if not live:
            return None
        idlest = min(live, key=lambda upstream: upstream.load)
        if idlest.load == 0 or len(live) >= self.settings.connections:
            return idlest
        return None

    async def _connect(self) -> _Upstream:
        nursery = self._nursery
        if nursery is None:
            raise RPCError(ErrorCode.SHUTTING_DOWN, "the relay is not running")
        address = self.address
        try:
            if address.scheme == "unix":
                stream = await trio.open_unix_socket(address.path)
            else:
                stream = await trio.open_tcp_stream(address.host or "127.0.0.1", address.port)
                stream.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, True)
        except OSError as exc:
            reason = _connect_failure(exc)
            log.warning("event=relay_connect_failed address=%s error=%r", address, reason)
            raise RPCError(
                ErrorCode.RELAY_UNAVAILABLE,
                f"cannot reach RoadRunner's RPC at {address} (s3.relay): {reason}",
                "is RoadRunner running? s3.* calls are not affected",
            ) from None
        upstream = _Upstream(stream, address, self.settings, self._max_frame_size)
        nursery.start_soon(upstream.read_loop)
        log.info(
            "event=relay_connected address=%s connections=%d", address, self.connection_count + 1
        )
        return upstream


def _connect_failure(exc: OSError) -> str:
    """Why a connect failed, in the operating system's words where there are some."""
    # trio's open_tcp_stream wraps the errors of its attempts in OSErrors and a group.
    error: BaseException | None = exc
    for _ in range(8):
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        if isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        elif error is not None and error.__cause__ is not None:
            error = error.__cause__
        else:
            break
    return str(exc) or type(exc).__name__
