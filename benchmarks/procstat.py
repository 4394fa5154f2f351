"""What a process costs, read from ``/proc``: CPU time, resident memory, peak memory.

Linux only. The CPU figures are cumulative ticks, so a cell's cost is the
difference of two readings divided by the wall time between them ("cores
used"). Peak memory uses the kernel's high-water mark (``VmHWM``), reset at
the start of a cell through ``clear_refs`` where the kernel allows it, and a
sampling thread as a cross-check and fallback.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import TracebackType

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_INTERVAL = 0.02


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of all the process's threads, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ")".
    fields = text[text.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(slots=True, frozen=True)
class MachineTimes:
    """Cumulative CPU seconds of the whole machine, split by who spent them."""

    processes: float  # user + nice + system time of every core
    interrupts: float  # irq + softirq time (loopback networking lands here)
    kernel_threads: float  # kworkers and the like (page-cache writeback lands here)


def machine_times() -> MachineTimes:
    with open("/proc/stat", "rb") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    # guest time is already counted in user time; steal is not ours at all.
    processes = (fields[0] + fields[1] + fields[2]) / CLOCK_TICKS
    interrupts = (fields[5] + fields[6]) / CLOCK_TICKS if len(fields) > 6 else 0.0
    return MachineTimes(processes, interrupts, _kernel_thread_seconds())


def _kernel_thread_seconds() -> float:
    """CPU seconds of kthreadd (pid 2) and its children: every kernel thread."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                text = handle.read()
        except OSError:
            continue  # exited meanwhile
        fields = text[text.rindex(b")") + 2 :].split()
        if entry.name == "2" or fields[1] == b"2":
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), or None."""
    prefix = field.encode() + b":"
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(prefix):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def descendants(pid: int) -> list[int]:
    """The process's children, their children, and so on (``/proc/PID/task/*/children``)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as handle:
                    children = [int(text) for text in handle.read().split()]
            except OSError:
                continue
            found.extend(children)
            pending.extend(children)
    return found


def rss_bytes(pid: int) -> int | None:
    kib = status_kib(pid, "VmRSS")
    return None if kib is None else kib * 1024


def reset_peak(pid: int) -> bool:
    """Reset the process's ``VmHWM`` to its current RSS; False where not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


@dataclass(slots=True)
class CpuReading:
    """CPU seconds of several processes at one moment."""

    at: float
    seconds: dict[int, float | None]
    machine: MachineTimes

    @classmethod
    def take(cls, pids: list[int], at: float) -> CpuReading:
        return cls(at, {pid: cpu_seconds(pid) for pid in pids}, machine_times())

    def outside_cores_since(self, earlier: CpuReading, pids: list[int]) -> float | None:
        """Cores used by user processes other than ``pids`` (work that is not the benchmark)."""
        ours = self.cores_since(earlier, pids)
        wall = self.at - earlier.at
        if ours is None or wall <= 0:
            return None
        now, before = self.machine, earlier.machine
        processes = (now.processes - before.processes) / wall
        kernel = (now.kernel_threads - before.kernel_threads) / wall
        return max(0.0, processes - kernel - ours)

    def kernel_cores_since(self, earlier: CpuReading) -> float | None:
        """Cores the kernel used outside any process: interrupts and kernel threads."""
        wall = self.at - earlier.at
        if wall <= 0:
            return None
        now, before = self.machine, earlier.machine
        spent = now.interrupts - before.interrupts + now.kernel_threads - before.kernel_threads
        # A kernel thread that exits between the readings takes its time with it.
        return max(0.0, spent / wall)

    def cores_since(self, earlier: CpuReading, pids: list[int]) -> float | None:
        """Cores the given processes used together between two readings."""
        wall = self.at - earlier.at
        total = 0.0
        for pid in pids:
            now, before = self.seconds.get(pid), earlier.seconds.get(pid)
            if now is None or before is None or wall <= 0:
                return None
            total += now - before
        return total / wall


class PeakMemory:
    """Peak RSS growth of one process while the ``with`` block runs.

    ``growth`` is the peak above the RSS at entry: the larger of the kernel's
    high-water mark (when it could be reset) and what a 50 Hz sampler saw.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = 0
        self.peak = 0
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self.hwm_reset = reset_peak(self.pid)
        self.baseline = self.peak = rss_bytes(self.pid) or 0
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        hwm = status_kib(self.pid, "VmHWM") if self.hwm_reset else None
        if hwm is not None:
            self.peak = max(self.peak, hwm * 1024)

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            current = rss_bytes(self.pid)
            if current is not None and current > self.peak:
                self.peak = current
