"""Attacking a real server process while a second client checks it stays alive.

:func:`watching` runs beside an attack: a thread of its own (so the attack's
tasks in the test's event loop cannot delay it) samples the resident memory
of the server's processes (the process and its descendants, from ``/proc``)
and keeps a second client calling ``s3.ListBuckets`` over a blocking socket,
recording the slowest answer. A test states its bounds on both (memory
growth over the baseline, answers within 0.5 s) and checks the server serves
normally after.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trio

from benchmarks.procstat import descendants, rss_bytes
from trio_s3rpc.goridge.frame import CODEC_JSON, FrameDecoder, encode_rpc_request

MIB = 1024 * 1024
# The liveness bound: a small call on a quiet connection, whatever the attack does.
ANSWER_WITHIN = 0.5
# How long the watch waits for one answer before it calls the server dead.
GIVE_UP_AFTER = 10.0


def runqueue_wait(pid: int, tid: int) -> float:
    """Seconds thread ``tid`` of ``pid`` spent runnable but not running (schedstat)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def server_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every process under it."""
    return sum(rss_bytes(p) or 0 for p in [pid, *descendants(pid)])


@dataclass
class Watch:
    """Memory and liveness of the server at ``pid`` while an attack runs."""

    address: str
    pid: int
    baseline: int = 0
    peak: int = 0
    slowest: float = 0.0
    raw_slowest: float = 0.0  # with the time neither process got a core
    calls: int = 0
    late: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def rss_growth(self) -> int:
        """Resident memory now, over the baseline."""
        return server_rss(self.pid) - self.baseline

    def _connect(self) -> socket.socket:
        host, _, port = self.address.removeprefix("tcp://").rpartition(":")
        sock = socket.create_connection((host, int(port)), timeout=GIVE_UP_AFTER)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        return sock

    def _call(self, sock: socket.socket, seq: int) -> None:
        sock.sendall(encode_rpc_request(seq, "s3.ListBuckets", CODEC_JSON, b"[]"))
        decoder = FrameDecoder()
        while (frame := decoder.next_frame()) is None:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the watch's connection")
            decoder.receive_data(data)
        assert json.loads(frame.payload[frame.options[1] :])["buckets"]

    def start(self) -> None:
        """Connect, take the baseline, and call and sample in a thread until stopped."""
        sock = self._connect()
        self._call(sock, 1)
        self.baseline = self.peak = server_rss(self.pid)
        threading.Thread(target=self._run, args=(sock,), daemon=True).start()

    def _run(self, sock: socket.socket) -> None:
        with sock:
            seq = 1
            me = threading.get_native_id()
            while not self._stop.is_set():
                seq += 1
                waited = self._machine_wait(me)
                started = time.monotonic()
                try:
                    self._call(sock, seq)
                except OSError:
                    self.slowest = float("inf")
                    return
                # A loaded machine that runs neither process is not the server's delay:
                # what the server's event loop and this thread waited for a core is not
                # counted (each thread's time runnable but not running, from schedstat).
                took = time.monotonic() - started - (self._machine_wait(me) - waited)
                self.raw_slowest = max(self.raw_slowest, time.monotonic() - started)
                self.calls += 1
                self.slowest = max(self.slowest, took)
                if took > ANSWER_WITHIN:
                    self.late.append(round(took, 3))
                self.peak = max(self.peak, server_rss(self.pid))
                self._stop.wait(0.02)

    def _machine_wait(self, me: int) -> float:
        return runqueue_wait(self.pid, self.pid) + runqueue_wait(os.getpid(), me)

    def stop(self) -> None:
        self._stop.set()

    def assert_bounded(self, growth_bound: int) -> None:
        assert self.calls > 0, "the second client made no call during the attack"
        assert self.slowest <= ANSWER_WITHIN, (
            f"the second client waited {self.slowest:.2f} s (bound {ANSWER_WITHIN} s; "
            f"{self.raw_slowest:.2f} s with the time the machine ran neither process); "
            f"late answers: {self.late}"
        )
        assert self.growth <= growth_bound, (
            f"server RSS grew {self.growth / MIB:.0f} MiB during the attack "
            f"(bound {growth_bound / MIB:.0f} MiB)"
        )


@contextlib.asynccontextmanager
async def watching(address: str, pid: int) -> AsyncIterator[Watch]:
    """A :class:`Watch` running for the block's duration."""
    watch = Watch(address, pid)
    await trio.to_thread.run_sync(watch.start)
    try:
        yield watch
    finally:
        watch.stop()
