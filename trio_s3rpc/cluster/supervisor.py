"""The supervising parent of ``s3.workers`` server processes.

The supervisor binds the listen address once (tcp or unix) and starts each
worker as a fresh interpreter (``python -m trio_s3rpc worker``) with the
bound sockets passed as inherited fds; each worker starts listening on its
copy when it can serve (so nothing queues before a worker can accept), and
the kernel spreads incoming connections over the workers (tcp: each worker
has its own ``SO_REUSEPORT`` socket on the address; unix: one shared
socket): every core serves. It owns what must be one per service:

- the order of bucket registrations: a RegisterBucket on any worker comes
  here, is applied on every live worker, then answered; a worker that
  (re)starts gets every registration so far before it serves;
- the workers' lives: a worker that dies is logged and restarted in the same
  slot (with a backoff when it keeps dying young);
- the stop: the first SIGINT/SIGTERM closes the supervisor's copy of the
  listening sockets and asks every worker to drain (each gives its calls
  ``shutdown_timeout``), then the supervisor exits 0; a second signal is
  passed on, which stops every worker at once.

Workers run in their own session, so a terminal's Ctrl-C reaches only the
supervisor (which passes it on once, not twice). If the supervisor itself
is killed, its workers see EOF on their stdin and stop at once.

Hooks (for metrics): ``worker_env`` is added to every worker's environment;
``on_worker_start(slot, pid)`` and ``on_worker_exit(slot, pid, returncode)``
run in the supervisor as workers come and go; ``restarts`` counts restarts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from trio_s3rpc.cluster import wire
from trio_s3rpc.cluster.worker import supervisor_socket, worker_socket
from trio_s3rpc.config import Config, ListenAddress
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.rpc.listeners import bind_sockets, remove_socket_file
from trio_s3rpc.trioutil import on_stop_signals

log = logging.getLogger("trio_s3rpc.supervisor")

# A worker that dies sooner than this after starting is restarted after a growing delay.
YOUNG_DEATH_SECONDS = 10.0
FIRST_RESTART_DELAY = 0.1
MAX_RESTART_DELAY = 5.0
# How long the supervisor waits past shutdown_timeout before it kills a worker.
STOP_MARGIN_SECONDS = 10.0
APPLY_TIMEOUT = 10.0

WorkerStartHook = Callable[[int, int], None]
WorkerExitHook = Callable[[int, int, int], None]


@dataclass(slots=True)
class _Slot:
    number: int
    process: trio.Process | None = None
    ready: trio.Event = field(default_factory=trio.Event)  # a worker of the slot served
    serving: bool = False  # the current process has reported ready
    member: bool = False  # has joined (hello) and gets bucket registrations


class Supervisor:
    """Runs ``workers`` worker processes on one listen address until signalled."""

    def __init__(
        self,
        config: Config,
        document: Any,
        source: str,
        workers: int,
        *,
        log_level: str = "info",
    ) -> None:
        self.config = config
        self.document = document
        self.source = source
        self.workers = workers
        self.log_level = log_level
        self.log_format = ""  # passed on to the workers when set
        self.worker_env: dict[str, str] = {}
        self.on_worker_start: list[WorkerStartHook] = []
        self.on_worker_exit: list[WorkerExitHook] = []
        self.restarts = 0
        self.address: ListenAddress | None = None
        self._slots = [_Slot(number) for number in range(workers)]
        self._buckets: list[wire.Registration] = []
        self._registry_lock = trio.Lock()
        self._stopping = False
        self._run_dir = ""
        self._fds: list[list[int]] = []

    @property
    def stopping(self) -> bool:
        """True from the first stop signal on."""
        return self._stopping

    # -- running -----------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[ListenAddress] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until a signal; report the bound address once every worker is ready."""
        per_slot, self.address = await bind_sockets(self.config.rpc, len(self._slots))
        # Each slot's own sockets (tcp: SO_REUSEPORT, so the kernel spreads the
        # connections over the workers; unix: one socket shared by all).
        self._fds = [[sock.fileno() for sock in sockets] for sockets in per_slot]
        sockets = list({id(sock): sock for group in per_slot for sock in group}.values())
        self._run_dir = tempfile.mkdtemp(prefix="trio-s3rpc-")  # mode 0700
        try:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with trio.open_nursery() as nursery:
                    await nursery.start(wire.serve, supervisor_socket(self._run_dir), self._answer)
                    async with trio.open_nursery() as workers:
                        for slot in self._slots:
                            workers.start_soon(self._keep_running, slot)
                        nursery.start_soon(self._watch_signals, signals, sockets, workers)
                        for slot in self._slots:
                            await slot.ready.wait()
                        if not self._stopping:
                            log.info(
                                "event=service_ready address=%s workers=%d",
                                self.address,
                                self.workers,
                            )
                        task_status.started(self.address)
                    # Every worker has exited (the stop): the control socket goes too.
                    nursery.cancel_scope.cancel()
        finally:
            for sock in sockets:
                sock.close()
            if self.address.scheme == "unix":
                remove_socket_file(self.address.path)
            shutil.rmtree(self._run_dir, ignore_errors=True)
        log.info("event=service_stopped restarts=%d", self.restarts)

    async def _keep_running(self, slot: _Slot) -> None:
        """Run the slot's worker; restart it whenever it dies, until the service stops."""
        try:
            await self._keep_slot(slot)
        finally:
            # A stop before this slot ever served must not leave run() waiting for it.
            slot.ready.set()

    async def _keep_slot(self, slot: _Slot) -> None:
        delay = FIRST_RESTART_DELAY
        while not self._stopping:
            started = trio.current_time()
            returncode = await self._run_worker(slot)
            if self._stopping:
                return
            if not slot.ready.is_set():
                # It never got to serve: a restart would only die the same way.
                raise RPCError(
                    ErrorCode.INTERNAL_ERROR,
                    f"worker {slot.number} exited with status {returncode} before serving",
                    "see the worker's log lines above",
                )
            delay = delay * 2 if trio.current_time() - started < YOUNG_DEATH_SECONDS else 0
            delay = min(max(delay, FIRST_RESTART_DELAY), MAX_RESTART_DELAY)
            self.restarts += 1
            log.warning(
                "event=worker_restarting slot=%d after_seconds=%.1f restarts=%d",
                slot.number,
                delay,
                self.restarts,
            )
            await trio.sleep(delay)

    async def _run_worker(self, slot: _Slot) -> int:
        fds = self._fds[slot.number]
        command = [
            sys.executable,
            "-m",
            "trio_s3rpc",
            "--log-level",
            self.log_level,
            *(("--log-format", self.log_format) if self.log_format else ()),
            "worker",
            "--slot",
            str(slot.number),
            "--workers",
            str(self.workers),
            "--run-dir",
            self._run_dir,
            *(argument for fd in fds for argument in ("--listen-fd", str(fd))),
        ]
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.PIPE,
            pass_fds=fds,
            start_new_session=True,
            env={**os.environ, **self.worker_env},
        )
        slot.process = process
        slot.serving = False
        pid = process.pid
        log.info("event=worker_started slot=%d pid=%d", slot.number, pid)
        for hook in self.on_worker_start:
            hook(slot.number, pid)
        assert process.stdin is not None
        given = {"document": self.document, "source": self.source, "listen": str(self.address)}
        try:
            # The config, then stdin stays open: the worker's lifeline. If it
            # died already, wait() says how.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await process.stdin.send_all(json.dumps(given).encode() + b"\n")
            if self._stopping:
                process.send_signal(signal.SIGTERM)
            try:
                returncode = await process.wait()
            except trio.Cancelled:
                # Past the stop's grace period: it gets no more time.
                log.error(
                    "event=worker_killed slot=%d pid=%d reason=stop_timeout", slot.number, pid
                )
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
                raise
        finally:
            slot.member = False
            slot.serving = False
            slot.process = None
            with trio.CancelScope(shield=True):
                await process.stdin.aclose()
        level = logging.INFO if self._stopping and returncode == 0 else logging.WARNING
        log.log(
            level, "event=worker_exited slot=%d pid=%d returncode=%d", slot.number, pid, returncode
        )
        for exit_hook in self.on_worker_exit:
            exit_hook(slot.number, pid, returncode)
        return returncode

    async def _watch_signals(
        self,
        signals: Any,
        sockets: list[socket.socket],
        workers: trio.Nursery,
    ) -> None:
        def drain() -> None:
            self._stopping = True
            # Workers close theirs as they begin to drain; the socket then closes.
            for sock in sockets:
                sock.close()
            # A worker still starting exits at once (it has accepted nothing);
            # the others drain.
            self._signal_workers(signal.SIGTERM)
            grace = self.config.s3.shutdown_timeout + STOP_MARGIN_SECONDS
            workers.cancel_scope.deadline = trio.current_time() + grace

        def stop_now() -> None:
            self._signal_workers(signal.SIGTERM)  # a worker's second signal: stop now
            workers.cancel_scope.deadline = min(
                workers.cancel_scope.deadline, trio.current_time() + STOP_MARGIN_SECONDS
            )

        await on_stop_signals(signals, drain, stop_now)

    def _signal_workers(self, signum: int) -> None:
        for slot in self._slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    # -- what workers ask ----------------------------------------------------

    async def _answer(
        self, request: wire.Hello | wire.Ready | wire.RegisterBucket
    ) -> wire.Joined | wire.Done:
        if isinstance(request, wire.Hello):
            slot = self._slot(request.slot)
            async with self._registry_lock:
                slot.member = True
                return wire.Joined(list(self._buckets))
        if isinstance(request, wire.Ready):
            slot = self._slot(request.slot)
            log.info("event=worker_ready slot=%d pid=%s", slot.number, request.pid)
            slot.serving = True
            slot.ready.set()
            return wire.Done()
        if isinstance(request, wire.RegisterBucket):
            return await self._register_bucket(wire.Registration(request.name, request.settings))
        raise RPCError(
            ErrorCode.INVALID_REQUEST, f"the supervisor does not answer {type(request).__name__}"
        )

    def _slot(self, number: int) -> _Slot:
        if not 0 <= number < self.workers:
            raise RPCError(ErrorCode.INVALID_REQUEST, f"no worker slot {number!r}")
        return self._slots[number]

    async def _register_bucket(self, registration: wire.Registration) -> wire.Done:
        name = registration.name
        async with self._registry_lock:
            if any(known.name == name for known in self._buckets):
                raise RPCError(
                    ErrorCode.BUCKET_ALREADY_EXISTS, "Bucket already registered", f"bucket: {name}"
                )
            self._buckets.append(registration)
            async with trio.open_nursery() as nursery:
                for slot in self._slots:
                    if slot.member:
                        nursery.start_soon(self._apply_bucket, slot, registration)
        return wire.Done()

    async def _apply_bucket(self, slot: _Slot, registration: wire.Registration) -> None:
        request = wire.ApplyBucket(registration.name, registration.settings)
        try:
            await wire.ask(
                worker_socket(self._run_dir, slot.number),
                request,
                wire.Done,
                seconds=APPLY_TIMEOUT,
            )
        except (wire.PeerUnavailable, RPCError) as exc:
            # It is dying or stuck; when it is restarted, hello gives it the bucket.
            log.warning(
                "event=bucket_not_applied slot=%d bucket=%s error=%r",
                slot.number,
                registration.name,
                str(exc),
            )
