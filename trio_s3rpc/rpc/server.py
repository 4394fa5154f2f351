"""Listeners, one nursery per connection, and graceful shutdown.

The server owns a nursery of connections. Each connection runs a reader that
feeds the sans-IO frame decoder and starts one task per request in the
connection's own nursery, so a connection's calls run concurrently and their
answers leave in whatever order they finish; a lock keeps writes whole.
Methods that never wait on I/O (ListBuckets, GetPublicURL) are answered by
the reader itself, which saves a task per call on the hottest paths. The
calls in flight per connection are bounded (``s3.max_in_flight``): at the
bound the reader stops reading, and the kernel's buffers push back on the
client.

With ``s3.relay`` set, a call for any service other than ``s3`` is handed,
frame and all, to the :class:`~trio_s3rpc.rpc.relay.Relay`, which forwards it
to RoadRunner's own RPC; it counts against the same in-flight bound and
shutdown grace as a local call. Without a relay that check is one attribute
test per frame. Peers outside ``s3.allow_from`` are refused at accept.

Shutdown (``request_shutdown``) closes the listeners at once and asks every
connection to close as soon as it is idle (no call in flight, no partial
frame); calls already received or arriving meanwhile are served. After
``shutdown_timeout`` whatever remains is cancelled and answered
``SHUTTING_DOWN`` where the connection can still take it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import logging
import os
import socket as stdlib_socket
import stat
import tempfile
from collections.abc import Iterator
from typing import Any

import trio

from trio_s3rpc import callers
from trio_s3rpc.config import MAX_UNIX_PATH, ListenAddress, RPCSettings, exposure_warning
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.goridge.frame import (
    FLAG_CONTROL,
    Frame,
    FrameDecoder,
    FrameError,
    RPCRequest,
    encode_rpc_error,
    parse_rpc_request,
)
from trio_s3rpc.rpc.dispatch import Dispatcher
from trio_s3rpc.rpc.registry import Method
from trio_s3rpc.rpc.relay import Relay

log = logging.getLogger("trio_s3rpc.rpc")

RECEIVE_SIZE = 256 * 1024
# Errors from accept() that mean "out of resources for now": keep serving.
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_SHUTDOWN_ANSWER_TIMEOUT = 1.0


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
    ) -> None:
        self._stream = stream
        self._dispatcher = dispatcher
        self._relay = relay
        self._decoder = FrameDecoder(settings.max_frame_size)
        self._max_in_flight = settings.max_in_flight
        self._slot_freed = trio.Event()
        self._fd = stream.socket.fileno()
        self._send_lock = trio.Lock()
        self._in_flight = 0
        self._closing = False
        self._server_stopping = False
        self._client_gone = False
        self._read_scope = trio.CancelScope()
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
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        fd = self._fd
        reads = 0
        drained = False
        while True:
            if drained:
                # The last read emptied the socket: a caller that waits for its
                # answer has sent nothing since, so wait before trying (a read
                # that fails costs a system call and an exception per call).
                await trio.lowlevel.wait_readable(fd)
                reads = 0
            try:
                data = os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                drained = True
                continue
            except OSError:
                data = b""
            drained = len(data) < RECEIVE_SIZE
            reads += 1
            if reads >= 16:
                await trio.lowlevel.checkpoint()
                reads = 0
            if not data:
                self._client_gone = True
                return
            self._decoder.receive_data(data)
            while True:
                try:
                    frame = self._decoder.next_frame()
                    if frame is None:
                        break
                    request = self._request_from(frame)
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
                    continue
                if self._relay is not None and not request.method.startswith("s3."):
                    await self._start_relayed(nursery, frame, request)
                    continue
                method = self._dispatcher.inline_method(request.method)
                if method is not None:
                    # Methods that never wait on I/O are answered right here:
                    # a task per call would cost more than the call itself.
                    self._in_flight += 1
                    await self._serve_call(request, method)
                    continue
                while self._in_flight >= self._max_in_flight:
                    # Backpressure: stop reading until a call finishes.
                    self._slot_freed = trio.Event()
                    await self._slot_freed.wait()
                self._in_flight += 1
                nursery.start_soon(self._serve_call, request)

    def _request_from(self, frame: Frame) -> RPCRequest | None:
        if frame.flags & FLAG_CONTROL:
            # Control frames (stream PING/STOP) carry no call; nothing to answer.
            return None
        return parse_rpc_request(frame)

    async def _serve_call(
        self, request: RPCRequest, method: Method[Any, Any] | None = None
    ) -> None:
        try:
            try:
                answer = await self._dispatcher.answer(request, method)
            except trio.Cancelled:
                if self._server_stopping and not self._client_gone:
                    await self._answer_shutting_down(request)
                raise
            await self._send(answer)
        finally:
            self._in_flight -= 1
            self._slot_freed.set()
            if self._closing and self.idle:
                self._read_scope.cancel()

    async def _start_relayed(
        self, nursery: trio.Nursery, frame: Frame, request: RPCRequest
    ) -> None:
        while self._in_flight >= self._max_in_flight:
            self._slot_freed = trio.Event()
            await self._slot_freed.wait()
        self._in_flight += 1
        nursery.start_soon(self._serve_relayed, frame, request)

    async def _serve_relayed(self, frame: Frame, request: RPCRequest) -> None:
        """Forward one call for another service; its answer or a clear error goes back."""
        assert self._relay is not None
        try:
            try:
                answer = await self._relay.forward(frame, request)
            except trio.Cancelled:
                if self._server_stopping and not self._client_gone:
                    await self._answer_shutting_down(request)
                raise
            await self._send(answer)
        finally:
            self._in_flight -= 1
            self._slot_freed.set()
            if self._closing and self.idle:
                self._read_scope.cancel()

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
        """Write one whole answer; answers never interleave.

        Fast path: when no other answer is being written, one plain
        non-blocking write; most answers fit in the socket buffer. Nothing
        awaits between the check and the write, so no lock is needed for it;
        only a write that must wait for the rest takes the lock, and answers
        that come meanwhile queue behind it.
        """
        lock = self._send_lock
        try:
            if lock.locked():
                async with lock:
                    await self._stream.send_all(frame)
                return
            try:
                sent = os.write(self._fd, frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                raise trio.BrokenResourceError from None
            if sent < len(frame):
                async with lock:  # free: nothing awaited since it was checked
                    await self._stream.send_all(memoryview(frame)[sent:])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The client is gone: stop reading; run() cancels the other calls.
            self._client_gone = True
            self._read_scope.cancel()


class RPCServer:
    """Accepts connections on one listen address and serves them until shutdown."""

    def __init__(
        self,
        settings: RPCSettings,
        dispatcher: Dispatcher,
        *,
        shutdown_timeout: float,
        relay: Relay | None = None,
    ) -> None:
        self.settings = settings
        self._dispatcher = dispatcher
        self._relay = relay
        self._shutdown_timeout = shutdown_timeout
        self._shutdown = trio.Event()
        self._connections: set[Connection] = set()
        self._ids = itertools.count(1)
        self.address: ListenAddress | None = None
        self._listeners: list[trio.SocketListener] | None = None
        self._owns_socket_file = True
        # Totals since start, read by the metrics sampler.
        self.connections_accepted = 0
        self.frames_refused = 0

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def calls_in_flight(self) -> int:
        return sum(connection.in_flight for connection in self._connections)

    @property
    def stopping(self) -> bool:
        return self._shutdown.is_set()

    def request_shutdown(self) -> None:
        """Begin a graceful stop; ``serve`` returns when it is complete."""
        self._shutdown.set()

    async def open(self) -> ListenAddress:
        """Bind the listen address now, so a bad address fails before anything starts.

        Idempotent: a second call answers the address already bound.
        """
        if self._listeners is None or self.address is None:
            self._listeners, self.address = await open_listeners(self.settings)
        return self.address

    def adopt(self, listeners: list[trio.SocketListener], address: ListenAddress) -> None:
        """Serve listeners opened by another process (the supervisor of workers).

        The supervisor owns a unix socket's file: this server never removes it.
        """
        self._listeners, self.address = listeners, address
        self._owns_socket_file = False

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, report the bound address through ``task_status``, serve until shutdown.

        Cancelling ``serve`` cancels every connection at once.
        """
        await self.open()
        assert self._listeners is not None and self.address is not None
        listeners = self._listeners
        owned = self.address.scheme == "unix" and self._owns_socket_file
        unix_path = self.address.path if owned else ""
        try:
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as acceptors:
                    for listener in listeners:
                        acceptors.start_soon(self._accept_loop, listener, connections)
                    log.info("event=listening address=%s", self.address)
                    risk = exposure_warning(self.settings, self.address)
                    if risk:
                        log.warning("event=listen_exposed address=%s risk=%r", self.address, risk)
                    task_status.started(self.address)
                    await self._shutdown.wait()
                    acceptors.cancel_scope.cancel()
                for listener in listeners:
                    await listener.aclose()
                if unix_path:
                    remove_socket_file(unix_path)
                    unix_path = ""
                log.info(
                    "event=shutdown_started connections=%d grace_seconds=%s",
                    len(self._connections),
                    self._shutdown_timeout,
                )
                for connection in list(self._connections):
                    connection.close_when_idle()
                connections.cancel_scope.deadline = trio.current_time() + self._shutdown_timeout
            if connections.cancel_scope.cancelled_caught:
                log.warning("event=shutdown_deadline_reached cancelled_remaining_calls=true")
            log.info("event=shutdown_complete")
        finally:
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
            if unix_path:
                remove_socket_file(unix_path)

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_CAPACITY_ERRNOS:
                    log.error(
                        "event=accept_failed error=%r; retrying in 100 ms", os.strerror(exc.errno)
                    )
                    await trio.sleep(0.1)
                    continue
                raise
            if self.settings.allow_from and not _peer_allowed(stream, self.settings):
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                continue
            connection = Connection(
                stream,
                self._dispatcher,
                self.settings,
                _peer_name(stream),
                next(self._ids),
                self._relay,
            )
            if self._shutdown.is_set():
                connection.close_when_idle()
            nursery.start_soon(self._run_connection, connection)

    async def _run_connection(self, connection: Connection) -> None:
        self._connections.add(connection)
        self.connections_accepted += 1
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            self.frames_refused += connection.frame_refused


def _peer_allowed(stream: trio.SocketStream, settings: RPCSettings) -> bool:
    """Whether a tcp peer is inside ``s3.allow_from``; a refusal is logged."""
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return False  # already gone
    if not isinstance(peer, tuple):
        return True  # unix socket: its file mode and owner decide
    try:
        address = ipaddress.ip_address(str(peer[0]).partition("%")[0])
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address is not None and any(address in network for network in settings.allow_from):
        return True
    log.warning(
        "event=connection_refused peer=%s reason=%r",
        _peer_name(stream),
        "not in s3.allow_from",
    )
    return False


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return "?"
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer) or "unix"


async def open_listeners(settings: RPCSettings) -> tuple[list[trio.SocketListener], ListenAddress]:
    """Open the listen address; for tcp port 0 the answer carries the bound port."""
    address = settings.listen
    if address.scheme == "unix":
        return [await _open_unix_listener(address.path, settings)], address
    host = address.host or None
    try:
        listeners = await trio.open_tcp_listeners(address.port, host=host)
    except OSError as exc:
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on {address}: {exc.strerror}"
        ) from None
    port = listeners[0].socket.getsockname()[1]
    return list(listeners), ListenAddress("tcp", host=address.host, port=port)


async def _open_unix_listener(path: str, settings: RPCSettings) -> trio.SocketListener:
    sock = trio.socket.from_stdlib_socket(_bind_unix(path, settings))
    try:
        sock.listen(stdlib_socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        remove_socket_file(path)
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: {exc.strerror}"
        ) from None
    return trio.SocketListener(sock)


def _bind_unix(path: str, settings: RPCSettings) -> stdlib_socket.socket:
    """A unix socket bound at ``path`` that nobody could reach before it had its mode.

    It is bound in a private (0700) directory beside ``path``, under a umask
    that gives it ``s3.socket_mode`` at once, given its owner and group there
    (through the directory's handle, never following a link), and only then
    renamed into place: nobody else can replace the file or reach the socket
    between bind and chmod, and a link planted at ``path`` is replaced, never
    followed. (On Linux, fchmod/fchown of the socket's own descriptor do not
    touch the file that connect() checks.)
    """
    _clear_stale_socket(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        private = tempfile.mkdtemp(prefix=".trio-s3rpc-", dir=parent)
    except OSError as exc:
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: {exc.strerror}"
        ) from None
    sock = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    directory = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # A path short enough for sun_path whatever the directory's length.
        bind_path = os.path.join(private, "s")
        if len(os.fsencode(bind_path)) > MAX_UNIX_PATH:
            bind_path = f"/proc/self/fd/{directory}/s"
        with _umask(0o777 & ~settings.socket_mode):
            sock.bind(bind_path)
        # The directory is ours alone, so nothing there can be a planted link.
        os.chmod("s", settings.socket_mode, dir_fd=directory)
        _chown_socket(path, settings, directory)
        os.rename("s", path, src_dir_fd=directory)
    except (OSError, RPCError) as exc:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink("s", dir_fd=directory)
        if isinstance(exc, RPCError):
            raise
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: {exc.strerror}"
        ) from None
    finally:
        os.close(directory)
        with contextlib.suppress(OSError):
            os.rmdir(private)
    return sock


def bind_sockets(
    settings: RPCSettings, copies: int = 1
) -> tuple[list[list[stdlib_socket.socket]], ListenAddress]:
    """Bind the listen address without listening yet (for a supervisor of workers).

    Connections are refused until a worker calls ``listen()`` on its inherited
    copy, which it does once it can serve: nobody waits in a backlog that no
    process accepts from. For tcp port 0 the answer carries the bound port.

    The answer holds ``copies`` lists of sockets, one per worker. For tcp with
    more than one copy, each is its own socket bound with ``SO_REUSEPORT``, so
    the kernel spreads new connections evenly over the workers' sockets; one
    socket shared by every worker lets whichever wakes first take them all
    (measured: 2 workers, 16 connections, one worker got nearly all of them).
    A unix socket, where ``SO_REUSEPORT`` does not spread connections, is one
    socket shared by every copy.
    """
    address = settings.listen
    if address.scheme == "unix":
        shared = [_bind_unix(address.path, settings)]
        return [shared] * copies, address
    host = address.host or None
    reuse_port = copies > 1 and hasattr(stdlib_socket, "SO_REUSEPORT")
    per_copy: list[list[stdlib_socket.socket]] = [[] for _ in range(copies if reuse_port else 1)]
    port = address.port
    try:
        infos = stdlib_socket.getaddrinfo(
            host, port, type=stdlib_socket.SOCK_STREAM, flags=stdlib_socket.AI_PASSIVE
        )
        seen: set[int] = set()
        for family, kind, proto, _, sockaddr in infos:
            if family in seen:
                continue
            seen.add(family)
            for sockets in per_copy:
                sock = stdlib_socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
                if family == stdlib_socket.AF_INET6:
                    sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
                # With port 0 every family and copy takes the port the first one got.
                sock.bind((sockaddr[0], port, *sockaddr[2:]))
                port = sock.getsockname()[1]
    except OSError as exc:
        for sockets in per_copy:
            for sock in sockets:
                sock.close()
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on {address}: {exc.strerror}"
        ) from None
    if not reuse_port:
        per_copy = per_copy * copies
    return per_copy, ListenAddress("tcp", host=address.host, port=port)


def _chown_socket(path: str, settings: RPCSettings, directory: int) -> None:
    """Give the socket file ``s`` in ``directory`` (a handle) ``s3.socket_owner`` and
    ``s3.socket_group``, when set; ``path`` is where it will be, for the message."""
    if settings.socket_owner < 0 and settings.socket_group < 0:
        return
    try:
        os.chown(
            "s",
            settings.socket_owner,
            settings.socket_group,
            dir_fd=directory,
            follow_symlinks=False,
        )
    except OSError as exc:
        raise RPCError(
            ErrorCode.INVALID_CONFIG,
            f"cannot give unix://{path} owner {settings.socket_owner} and group "
            f"{settings.socket_group} (s3.socket_owner, s3.socket_group): {exc.strerror}",
            "a different owner needs root; the group must be one of the server user's groups",
        ) from None


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse to steal a live one."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: a non-socket file is there"
        )
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: stale
        log.info("event=stale_socket_removed path=%s", path)
        return
    finally:
        probe.close()
    raise RPCError(
        ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: another server is listening"
    )


def remove_socket_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)
