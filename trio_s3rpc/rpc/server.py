"""The RPC server: one nursery per connection, and graceful shutdown (its
listening sockets are opened by ``listeners.py``).

The server owns a nursery of connections (each one a
:class:`~trio_s3rpc.rpc.connection.Connection`). Peers outside
``s3.allow_from``, and connections past ``s3.max_connections``, are refused
at accept, with a log line at most once per interval.

Shutdown (``request_shutdown``) closes the listeners at once and asks every
connection to close as soon as it is idle (no call in flight, no partial
frame); calls already received or arriving meanwhile are served. After
``shutdown_timeout`` whatever remains is cancelled and answered
``SHUTTING_DOWN`` where the connection can still take it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import math
import os
import resource
import socket

import trio

from trio_s3rpc.budget import (
    MemoryBudget,
)
from trio_s3rpc.config import ListenAddress, RPCSettings, exposure_warning
from trio_s3rpc.poller import Poller, open_poller
from trio_s3rpc.rpc.connection import Connection, budget_for
from trio_s3rpc.rpc.dispatch import Dispatcher
from trio_s3rpc.rpc.listeners import open_listeners, peer_allowed, peer_name, remove_socket_file
from trio_s3rpc.rpc.relay import Relay

log = logging.getLogger("trio_s3rpc.rpc")

# Errors from accept() that mean "out of resources for now": keep serving.
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
# Refusals at accept (EMFILE, s3.max_connections) are logged at most once per interval.
REFUSAL_LOG_INTERVAL = 10.0


def raise_open_files_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; answer the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class _Throttled:
    """A log line that repeats at most once per interval, with how often it was muted."""

    __slots__ = ("_last", "_muted")

    def __init__(self) -> None:
        self._last = -math.inf
        self._muted = 0

    def ready(self) -> int | None:
        """The count muted since the last line if one may be written now, else None."""
        now = trio.current_time()
        if now - self._last < REFUSAL_LOG_INTERVAL:
            self._muted += 1
            return None
        self._last, muted, self._muted = now, self._muted, 0
        return muted


def _close_one_waiting(listening_fd: int) -> None:
    """Accept one waiting connection and close it, synchronously (no checkpoint, so
    no task can take the descriptor meanwhile). Nothing waiting, or the slot gone
    to a thread: nothing is done."""
    listening = socket.socket(fileno=listening_fd)  # wraps the descriptor, no dup
    try:
        listening.setblocking(False)
        waiting, _ = listening.accept()
    except OSError:
        return
    finally:
        listening.detach()  # the listener still owns it
    waiting.close()


class RPCServer:
    """Accepts connections on one listen address and serves them until shutdown."""

    def __init__(
        self,
        settings: RPCSettings,
        dispatcher: Dispatcher,
        *,
        shutdown_timeout: float,
        relay: Relay | None = None,
        budget: MemoryBudget | None = None,
    ) -> None:
        self.settings = settings
        self._dispatcher = dispatcher
        self._relay = relay
        self.budget = budget if budget is not None else budget_for(settings)
        self._refused_full = _Throttled()
        self._refused_files = _Throttled()
        # One descriptor kept spare: when accept() hits EMFILE it is given up to
        # accept and close the waiting connection, so that client is told at
        # once instead of waiting in the backlog.
        self._spare_fd = -1
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

    async def serve(
        self, *, task_status: trio.TaskStatus[ListenAddress] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report the bound address through ``task_status``, serve until shutdown.

        Cancelling ``serve`` cancels every connection at once.
        """
        await self.open()
        assert self._listeners is not None and self.address is not None
        listeners = self._listeners
        open_files = raise_open_files_limit()
        self._keep_spare_fd()
        owned = self.address.scheme == "unix" and self._owns_socket_file
        unix_path = self.address.path if owned else ""
        try:
            async with open_poller() as poller, trio.open_nursery() as connections:
                async with trio.open_nursery() as acceptors:
                    for listener in listeners:
                        acceptors.start_soon(self._accept_loop, listener, connections, poller)
                    log.info(
                        "event=listening address=%s max_connections=%d open_files_limit=%d "
                        "memory_limit=%d connection_memory=%d",
                        self.address,
                        self.settings.max_connections,
                        open_files,
                        self.budget.limit,
                        self.budget.connection_share,
                    )
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
            if self._spare_fd >= 0:
                os.close(self._spare_fd)
                self._spare_fd = -1
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
            if unix_path:
                remove_socket_file(unix_path)

    async def _accept_loop(
        self, listener: trio.SocketListener, nursery: trio.Nursery, poller: Poller
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_CAPACITY_ERRNOS:
                    await self._out_of_descriptors(listener, exc.errno)
                    continue
                raise
            if self._spare_fd < 0 and not self._keep_spare_fd():
                # The spare went to another consumer and no descriptor is left to
                # take it back: this client would take the last one. Refuse it, so
                # the next client past the limit can still be told at once.
                self._log_out_of_files(errno.EMFILE)
                stream.socket.close()
                continue
            if self.settings.allow_from and not peer_allowed(stream, self.settings):
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                continue
            if len(self._connections) >= self.settings.max_connections:
                self._refuse(stream)
                continue
            connection = Connection(
                stream,
                self._dispatcher,
                self.settings,
                peer_name(stream),
                next(self._ids),
                self._relay,
                self.budget.share(),
                poller=poller,
            )
            if self._shutdown.is_set():
                connection.close_when_idle()
            nursery.start_soon(self._run_connection, connection)

    def _refuse(self, stream: trio.SocketStream) -> None:
        """Close a connection past ``s3.max_connections`` at once (the client sees EOF)."""
        muted = self._refused_full.ready()
        if muted is not None:
            log.warning(
                "event=connection_refused peer=%s reason=%r open=%d refused_since_last_log=%d",
                peer_name(stream),
                "s3.max_connections reached",
                len(self._connections),
                muted,
            )
        stream.socket.close()

    def _keep_spare_fd(self) -> bool:
        """Hold one descriptor in reserve; whether one is held."""
        if self._spare_fd < 0:
            with contextlib.suppress(OSError):
                self._spare_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return self._spare_fd >= 0

    def _log_out_of_files(self, error: int) -> None:
        muted = self._refused_files.ready()
        if muted is not None:
            log.error(
                "event=accept_failed error=%r open_connections=%d failures_since_last_log=%d; "
                "refusing new connections until descriptors are free (RLIMIT_NOFILE %d)",
                os.strerror(error),
                len(self._connections),
                muted,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            )

    async def _out_of_descriptors(self, listener: trio.SocketListener, error: int) -> None:
        """accept() failed for want of descriptors or memory: log it once per interval,
        close the waiting connection with the spare descriptor, keep serving the rest.

        The spare is given up, used and taken back with no checkpoint between, so no
        other task can take the slot; should something outside trio (a thread) take
        it anyway, the spare is taken back later, and until then new clients are
        refused at accept (see ``_accept_loop``)."""
        self._log_out_of_files(error)
        if not self._keep_spare_fd():
            # No spare to give up and none free: only a closing connection (or
            # whatever else holds descriptors) frees one. Try again soon, without
            # spinning.
            await trio.sleep(0.1)
            return
        os.close(self._spare_fd)
        self._spare_fd = -1
        _close_one_waiting(listener.socket.fileno())
        if not self._keep_spare_fd():
            await trio.sleep(0.1)
        else:
            await trio.lowlevel.checkpoint()

    async def _run_connection(self, connection: Connection) -> None:
        self._connections.add(connection)
        self.connections_accepted += 1
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            self.frames_refused += connection.frame_refused
