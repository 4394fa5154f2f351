"""Sampling the server process with py-spy during a cell, and its top functions by own time.

py-spy attaches from outside (no change to the server), samples without
pausing the process (``--nonblocking``), drops idle stacks (trio waiting in
epoll), and writes collapsed stacks (``--format raw``), one line per
distinct stack with its sample count. A function's *own* time is the samples
where it is the innermost frame; its *total* time is the samples where it
appears anywhere in the stack.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_RATE = 200
TOP = 15


@dataclass(slots=True, frozen=True)
class FunctionCost:
    function: str
    own_samples: int
    total_samples: int
    own_share: float  # of all active samples
    total_share: float


@dataclass(slots=True)
class Profile:
    """What py-spy saw in one cell."""

    cell: str
    seconds: float
    rate: int
    active_samples: int
    top: list[FunctionCost] = field(default_factory=list)
    raw_path: str = ""
    error: str = ""
    ops_per_second: float | None = None  # of the cell while profiled (MiB/s for transfers)

    @property
    def unit(self) -> str:
        return "ops/s" if "@" in self.cell else "MiB/s"

    @property
    def busy_share(self) -> float:
        """Samples in which the process ran Python code, of all it could have taken."""
        expected = self.seconds * self.rate
        return self.active_samples / expected if expected else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "busy_share": self.busy_share}

    def render(self) -> str:
        if self.error:
            return f"profile of {self.cell}: {self.error}"
        lines = [
            f"profile of the server during {self.cell}: {self.active_samples} active samples "
            f"in {self.seconds:g} s at {self.rate} Hz (busy {self.busy_share:.0%} of the time"
            f"; {self.ops_per_second or 0:.0f} {self.unit} while profiled)",
            f"  {'own':>6} {'total':>6}  function",
        ]
        for cost in self.top:
            lines.append(f"  {cost.own_share:6.1%} {cost.total_share:6.1%}  {cost.function}")
        return "\n".join(lines)


def find_pyspy() -> str | None:
    """py-spy beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file():
        return str(beside)
    return shutil.which("py-spy")


def parse_collapsed(text: str, top: int = TOP) -> tuple[int, list[FunctionCost]]:
    """Active samples and the ``top`` functions by own time, from py-spy's raw output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    costs = [
        FunctionCost(
            function=function,
            own_samples=count,
            total_samples=total[function],
            own_share=count / samples,
            total_share=total[function] / samples,
        )
        for function, count in own.most_common(top)
    ]
    return samples, costs


class PySpyRecording:
    """One ``py-spy record`` of a process: for ``seconds``, or until :meth:`stop`."""

    def __init__(
        self,
        binary: str,
        pid: int,
        output: Path,
        cell: str,
        seconds: int | None = None,
        *,
        subprocesses: bool = False,
    ) -> None:
        """``subprocesses``: the server's workers too (their stacks summed with its own)."""
        self.output = output
        self.cell = cell
        self.seconds = seconds
        command = [binary, "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE)]
        if seconds is not None:
            command += ["--duration", str(seconds)]
        command += ["--format", "raw", "--function", "--nonblocking", "--output", str(output)]
        if subprocesses:
            command.append("--subprocesses")
        self._started = time.monotonic()
        self._stopped: float | None = None
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0,
        )

    def stop(self) -> None:
        """End the recording now; py-spy writes its file on SIGINT."""
        self._stopped = time.monotonic()
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 30.0) -> Profile:
        """Wait for py-spy to write its file and summarise it."""
        try:
            _, stderr = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, stderr = self._process.communicate()
        seconds = self.seconds or ((self._stopped or time.monotonic()) - self._started)
        profile = Profile(self.cell, round(seconds, 2), SAMPLE_RATE, 0, raw_path=str(self.output))
        if not self.output.exists():
            profile.error = f"py-spy wrote nothing: {stderr.decode(errors='replace').strip()}"
            return profile
        profile.active_samples, profile.top = parse_collapsed(self.output.read_text())
        return profile
