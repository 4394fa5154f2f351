"""Client processes that generate the load, so the client side is not the bottleneck.

A :class:`WorkerPool` keeps a few long-lived processes (started with
``spawn``, ignoring Ctrl-C so the parent decides when they stop). For each
cell the parent splits the connections across them and sends each its
:class:`~benchmarks.clients.CellSpec`; every worker connects, reports ready,
and receives one shared :class:`Window` of monotonic times (the clock is
system-wide on Linux): warm up from ``go_at``, record operations that
complete between ``measure_at`` and ``end_at``, start none after ``end_at``.
trio clients run one task per connection; boto3 runs one thread per
connection.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import trio

from benchmarks.clients import (
    AsyncOperation,
    CellSpec,
    SyncOperation,
    boto3_operations,
    trio_factory,
)

SETUP_TIMEOUT = 60.0
# Operations still running at end_at may finish within this; then they are cancelled.
DRAIN_SECONDS = 10.0
ERROR_PAUSE = 0.05
START_DELAY = 0.05

T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class Window:
    go_at: float
    measure_at: float
    end_at: float

    @property
    def duration(self) -> float:
        return self.end_at - self.measure_at


@dataclass(slots=True)
class WorkerResult:
    """Latencies (seconds) of the operations completed inside the window, and the failures."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""


class CellFailed(Exception):
    """A worker could not set up or run its part of a cell."""


class _Record:
    """Collects one worker's results; safe to use from several threads."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.result = WorkerResult()
        self._lock = threading.Lock()

    def completed(self, started: float, ended: float) -> None:
        if self.window.measure_at <= ended < self.window.end_at:
            self.result.latencies.append(ended - started)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.result.errors += 1
            if not self.result.first_error:
                self.result.first_error = f"{type(exc).__name__}: {exc}"[:500]


# -- inside a worker process ------------------------------------------------------


def worker_main(connection: multiprocessing.connection.Connection) -> None:
    """Run cells until told to stop (``None``) or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            spec = connection.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        try:
            if trio_factory(spec.client) is not None:
                result = trio.run(_run_trio_cell, spec, connection)
            else:
                result = _run_thread_cell(spec, connection)
        except Exception:
            connection.send(("failed", traceback.format_exc(limit=8)))
            continue
        if result is not None:
            connection.send(("result", result))


async def _run_trio_cell(
    spec: CellSpec, connection: multiprocessing.connection.Connection
) -> WorkerResult | None:
    async with AsyncExitStack() as stack:
        factory = trio_factory(spec.client)
        assert factory is not None
        operations = await factory(spec, stack)
        connection.send(("ready", None))
        window: Window = await trio.to_thread.run_sync(connection.recv)
        record = _Record(window)
        deadline = trio.current_time() + (window.end_at + DRAIN_SECONDS - time.monotonic())
        with trio.move_on_at(deadline):
            async with trio.open_nursery() as nursery:
                for operation in operations:
                    nursery.start_soon(_drive_async, operation, window, record)
        return record.result


async def _drive_async(operation: AsyncOperation, window: Window, record: _Record) -> None:
    await trio.sleep(max(0.0, window.go_at - time.monotonic()))
    iteration = 0
    while (started := time.monotonic()) < window.end_at:
        try:
            await operation(iteration)
        except Exception as exc:
            record.failed(exc)
            await trio.sleep(ERROR_PAUSE)
        else:
            record.completed(started, time.monotonic())
        iteration += 1


def _run_thread_cell(
    spec: CellSpec, connection: multiprocessing.connection.Connection
) -> WorkerResult:
    operations = boto3_operations(spec)
    connection.send(("ready", None))
    window: Window = connection.recv()
    record = _Record(window)
    threads = [
        threading.Thread(target=_drive_sync, args=(operation, window, record), daemon=True)
        for operation in operations
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, window.end_at + DRAIN_SECONDS - time.monotonic()))
    return record.result


def _drive_sync(operation: SyncOperation, window: Window, record: _Record) -> None:
    time.sleep(max(0.0, window.go_at - time.monotonic()))
    iteration = 0
    while (started := time.monotonic()) < window.end_at:
        try:
            operation(iteration)
        except Exception as exc:
            record.failed(exc)
            time.sleep(ERROR_PAUSE)
        else:
            record.completed(started, time.monotonic())
        iteration += 1


# -- in the parent ----------------------------------------------------------------


def split(total: int, parts: int) -> list[int]:
    """``total`` connections over ``parts`` workers as evenly as possible (zeros dropped)."""
    base, extra = divmod(total, parts)
    return [share for index in range(parts) if (share := base + (index < extra))]


class WorkerPool:
    """Long-lived load-generating processes, reused by every cell."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._connections: list[multiprocessing.connection.Connection] = []
        self._processes: list[Any] = []
        for index in range(processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=worker_main, args=(child_end,), name=f"bench-client-{index}", daemon=True
            )
            process.start()
            child_end.close()
            self._connections.append(parent_end)
            self._processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def run_cell(
        self,
        spec: CellSpec,
        warmup: float,
        duration: float,
        observe: Callable[[Window], T],
        *,
        processes: int | None = None,
    ) -> tuple[Window, list[WorkerResult], T]:
        """Run one cell on as many workers as it has connections (up to the pool size,
        or up to ``processes``).

        ``observe`` runs in the parent while the window is open (sampling the
        server); its answer is returned with the workers' results.
        """
        workers = len(self._connections) if processes is None else processes
        if not 1 <= workers <= len(self._connections):
            raise ValueError(f"{workers} client processes asked of a pool of "
                             f"{len(self._connections)}")  # fmt: skip
        shares = split(spec.connections, workers)
        active = self._connections[: len(shares)]
        for worker, (connection, share) in enumerate(zip(active, shares, strict=True)):
            connection.send(replace(spec, connections=share, worker=worker))
        setup = self._collect(active, SETUP_TIMEOUT)
        failures = [text for kind, text in setup if kind != "ready"]
        if failures:
            # The ready ones wait for a window: give them an empty one, then report.
            now = time.monotonic()
            empty = Window(now, now, now)
            ready = [c for c, (kind, _) in zip(active, setup, strict=True) if kind == "ready"]
            for connection in ready:
                connection.send(empty)
            self._collect(ready, DRAIN_SECONDS + 10)
            raise CellFailed(failures[0])
        go_at = time.monotonic() + START_DELAY
        window = Window(go_at, go_at + warmup, go_at + warmup + duration)
        for connection in active:
            connection.send(window)
        observed = observe(window)
        timeout = max(0.0, window.end_at - time.monotonic()) + DRAIN_SECONDS + 10
        answers = self._collect(active, timeout)
        failed = [payload for kind, payload in answers if kind != "result"]
        if failed:
            raise CellFailed(str(failed[0]))
        return window, [payload for _, payload in answers], observed

    def _collect(
        self, connections: list[multiprocessing.connection.Connection], timeout: float
    ) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        answers = []
        for connection in connections:
            if not connection.poll(max(0.0, deadline - time.monotonic())):
                # The protocol is out of step now: this pool cannot be reused.
                self.close()
                raise CellFailed(f"a client process did not answer within {timeout:.0f} s")
            answers.append(connection.recv())
        return answers

    def close(self) -> None:
        """Ask the workers to exit; terminate any that do not within a second."""
        for connection in self._connections:
            with suppress(OSError):
                connection.send(None)
        for process in self._processes:
            process.join(timeout=1.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2.0)
        for connection in self._connections:
            connection.close()
        self._connections = []
        self._processes = []
