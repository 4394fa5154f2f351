"""Instructions per call of the server, counted by callgrind: a figure load cannot move.

Wall-clock and CPU-time figures on a shared machine move by more than the 3%
issue 22 allows a change to cost, so a before/after of a few percent cannot be
read from them. Valgrind's callgrind counts the instructions the server
executes instead (user space only: the kernel's share of a system call is not
in it), and that count does not depend on what else runs on the machine.

For each source tree given, this starts one SeaweedFS (shared by all trees),
then the tree's server (``PYTHONPATH=TREE python -m trio_s3rpc serve``, one
process, ``PYTHONHASHSEED=0``) under ``valgrind --tool=callgrind`` at
``nice -n 19``, and on one connection, one call at a time, for each workload:
warm-up calls, ``callgrind_control --zero``, ``--calls`` calls,
``callgrind_control --dump``; the dump's total over the calls is the figure.
Between calls the server waits in ``epoll_wait``; vgdb interrupts that wait
to deliver the zero and the dump, so each dump holds the calls and a few
loop iterations, the same for every tree.

    python -m benchmarks.callcount TREE [TREE ...] [--count instructions] [--calls 500] \\
        [--warmup 100] [--workloads listbuckets,exists,read4k,write4k,write64k] \\
        [--codec json] [--top 25] [--keep DIR]

Workloads: ``listbuckets`` (no storage request), ``exists`` (a HEAD of one
object), ``read4k``/``read64k`` (a GET of one object), ``write4k``/``write64k``
(a PUT of one key, again and again). The table gives the count per call for
each tree and the ratio to the first tree. ``--top N`` prints, per workload,
the N names whose count per call differs most between the first tree and each
other one: for instructions, C functions' own (exclusive) counts, read from
the dump (CPython's evaluator, allocator and dict functions stand for the
Python code that calls them). ``--count python-calls`` runs each server
without valgrind under a profile hook instead and counts Python function
calls per call, per function: which Python code runs more often.
``--count syscalls`` attaches ``strace -f -c`` to the plain server for the
counted calls: system calls per call, by name (the kernel's work, which
callgrind does not see).

Under callgrind the server runs about 50 times slower: 500 ListBuckets take
a few seconds, 500 Reads about half a minute, and a server's start about half
a minute (all of them several times longer on a loaded machine).
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import msgpack
import yaml

from benchmarks.server import RPC_BUCKET, BucketSettings, server_config
from benchmarks.target import S3Target, open_target, put_fixtures
from trio_s3rpc.embedded import terminate_process
from trio_s3rpc.goridge.frame import (
    CODEC_JSON,
    CODEC_MSGPACK,
    FLAG_ERROR,
    FrameDecoder,
    encode_rpc_request,
)

# name: (method, size of the object read or written)
WORKLOADS = {
    "listbuckets": ("s3.ListBuckets", 0),
    "exists": ("s3.Exists", 4096),
    "read4k": ("s3.Read", 4096),
    "read64k": ("s3.Read", 65536),
    "write4k": ("s3.Write", 4096),
    "write64k": ("s3.Write", 65536),
}
DEFAULT_WORKLOADS = ("listbuckets", "exists", "read4k", "write4k", "write64k")
MODES = ("instructions", "python-calls", "syscalls")
START_TIMEOUT = 600.0  # a server's start under callgrind (imports run 50 times slower)
STOP_GRACE = 60.0
_SERVING = re.compile(r"serving on tcp://([^\s:]+):(\d+)")
# The part's cost since the zero (a first dump's "totals:" also holds the start's).
_TOTAL = re.compile(rb"^summary:\s*(\d+)", re.MULTILINE)
# The profile hook of --python-calls: counts Python calls per function, zeroed on
# SIGUSR1 and written to $CALLCOUNT_OUT on SIGUSR2; then runs the server.
_PROFILED_SERVER = r"""
import collections, json, os, runpy, signal, sys, threading
counts = collections.Counter()
def hook(frame, event, arg):
    if event == "call":
        code = frame.f_code
        counts[(code.co_filename, code.co_firstlineno, code.co_qualname)] += 1
def zero(signum, frame):
    counts.clear()
def dump(signum, frame):
    sys.setprofile(None)  # the hook would count (and grow the counter) while it is read
    try:
        rows = [[*key, n] for key, n in dict(counts).items()]
        path = os.environ["CALLCOUNT_OUT"]
        with open(path + ".tmp", "w") as out:
            json.dump(rows, out)
        os.replace(path + ".tmp", path)
    finally:
        sys.setprofile(hook)
signal.signal(signal.SIGUSR1, zero)
signal.signal(signal.SIGUSR2, dump)
threading.setprofile(hook)
sys.setprofile(hook)
sys.argv = ["trio_s3rpc", *sys.argv[1:]]
runpy.run_module("trio_s3rpc", run_name="__main__", alter_sys=True)
"""


def log(message: str) -> None:
    print(message, flush=True)


class Client:
    """One blocking connection, one call at a time (as PHP's ``RPC``)."""

    def __init__(self, host: str, port: int, codec: int) -> None:
        self._socket = socket.create_connection((host, port))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._codec = codec
        self._decoder = FrameDecoder(max_payload=2**32 - 1)
        self._seq = 0

    def call(self, method: str, args: dict[str, Any]) -> Any:
        self._seq += 1
        if self._codec == CODEC_JSON:
            body = json.dumps(args).encode()
        else:
            body = msgpack.packb(args, use_bin_type=True)
        self._socket.sendall(encode_rpc_request(self._seq, method, self._codec, body))
        while (frame := self._decoder.next_frame()) is None:
            data = self._socket.recv(256 * 1024)
            if not data:
                raise RuntimeError("the server closed the connection")
            self._decoder.receive_data(data)
        payload = frame.payload[frame.options[1] :]
        if frame.flags & FLAG_ERROR:
            raise RuntimeError(f"{method}: {payload.decode(errors='replace')}")
        if self._codec == CODEC_JSON:
            return json.loads(payload)
        return msgpack.unpackb(payload, raw=False)

    def close(self) -> None:
        self._socket.close()


def object_key(size: int) -> str:
    return f"callcount-{size}"


class Workload:
    """One kind of call, its arguments made once (a Write's content too)."""

    def __init__(self, name: str, codec: int) -> None:
        self.name = name
        self.method, self.size = WORKLOADS[name]
        self.args: dict[str, Any] = {}
        if self.size:
            self.args = {"bucket": RPC_BUCKET, "pathname": object_key(self.size)}
        if self.method == "s3.Write":
            content = os.urandom(self.size)
            self.args["pathname"] = f"callcount-written-{self.size}"
            self.args["content"] = (
                base64.b64encode(content).decode() if codec == CODEC_JSON else content
            )

    def call(self, client: Client) -> None:
        """One call, its answer checked."""
        answer = client.call(self.method, self.args)
        if self.method == "s3.ListBuckets":
            good = RPC_BUCKET in answer.get("buckets", ())
        elif self.method == "s3.Exists":
            good = answer.get("exists") is True
        elif self.method == "s3.Write":
            good = answer.get("size") == self.size
        else:
            content = answer["content"]
            if isinstance(content, str):
                content = base64.b64decode(content)
            good = len(content) == self.size
        if not good:
            raise RuntimeError(f"{self.method} answered {str(answer)[:200]}")


class MeasuredServer:
    """A tree's server, one process, and its counts between :meth:`zero` and :meth:`dump`:
    under callgrind (``instructions``), a profile hook (``python-calls``) or strace
    attached for the span (``syscalls``)."""

    def __init__(
        self, tree: Path, document: dict[str, Any], workdir: Path, name: str, mode: str
    ) -> None:
        self.tree = tree
        self.name = name
        self.mode = mode
        self.config_path = workdir / f"{name}.rr.yaml"
        self.log_path = workdir / f"{name}.log"
        self.out_path = workdir / f"{name}.callgrind"
        self.counts_path = workdir / f"{name}.pycalls.json"
        self.strace_path = workdir / f"{name}.strace"
        self._document = document
        self._process: subprocess.Popen[bytes] | None = None
        self._strace: subprocess.Popen[bytes] | None = None
        self._dumps = 0
        self.host = ""
        self.port = 0

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        descriptor = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            yaml.safe_dump(self._document, handle)
        serve = ["serve", "--config", str(self.config_path), "--workers", "1"]
        command = ["nice", "-n", "19", sys.executable, "-m", "trio_s3rpc", *serve]
        if self.mode == "python-calls":
            command = ["nice", "-n", "19", sys.executable, "-c", _PROFILED_SERVER, *serve]
        elif self.mode == "instructions":
            command[3:3] = [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out_path}",
                "--dump-line=no",
            ]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": str(self.tree),
            "PYTHONHASHSEED": "0",
            "CALLCOUNT_OUT": str(self.counts_path),
        }
        with self.log_path.open("wb") as output:
            self._process = subprocess.Popen(
                command, env=env, cwd=self.tree, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, process_group=0,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = _SERVING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at startup:\n{self.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not listen in {START_TIMEOUT:g} s")

    def stop(self) -> None:
        strace, self._strace = self._strace, None
        if strace is not None:
            terminate_process(strace, STOP_GRACE)
        process, self._process = self._process, None
        if process is not None:
            terminate_process(process, STOP_GRACE)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def zero(self) -> None:
        if self.mode == "python-calls":
            os.kill(self.pid, signal.SIGUSR1)
            time.sleep(0.2)  # the handler runs at the loop's next bytecode
        elif self.mode == "instructions":
            _control("--zero", self.pid)
        else:
            self.strace_path.unlink(missing_ok=True)
            self._strace = subprocess.Popen(
                ["strace", "-f", "-c", "-o", str(self.strace_path), "-p", str(self.pid)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            # Every thread attached ("Process N attached" each) before the count starts.
            assert self._strace.stderr is not None
            threads = len(os.listdir(f"/proc/{self.pid}/task"))
            for _ in range(threads):
                self._strace.stderr.readline()
            time.sleep(0.5)

    def dump(self, hint: str) -> Path:
        """Write the counts since ``zero``; the file written."""
        self._dumps += 1
        if self.mode == "python-calls":
            self.counts_path.unlink(missing_ok=True)
            os.kill(self.pid, signal.SIGUSR2)
            path = _wait_for(self.counts_path)
            kept = path.with_name(f"{path.stem}.{self._dumps}.{hint}.json")
            path.rename(kept)
            return kept
        if self.mode == "syscalls":
            strace, self._strace = self._strace, None
            if strace is not None:
                strace.send_signal(signal.SIGINT)
                strace.wait(STOP_GRACE)
            kept = self.strace_path.with_name(f"{self.strace_path.name}.{self._dumps}.{hint}")
            self.strace_path.rename(kept)
            return kept
        before = set(self.out_path.parent.glob(self.out_path.name + ".*"))
        _control("--dump=" + hint, self.pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for path in set(self.out_path.parent.glob(self.out_path.name + ".*")) - before:
                if _TOTAL.search(path.read_bytes()):
                    return path
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: no callgrind dump appeared")


def _control(option: str, pid: int) -> None:
    """callgrind_control (through vgdb, which interrupts the server's wait to deliver it)."""
    done = subprocess.run(["callgrind_control", option, str(pid)], capture_output=True, text=True)
    if done.returncode != 0 or "OK." not in done.stdout:
        raise RuntimeError(f"callgrind_control {option} {pid}: {done.stdout}{done.stderr}")


def _wait_for(path: Path) -> Path:
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} was not written")
        time.sleep(0.1)
    return path


def total_instructions(dump: Path) -> int:
    match = _TOTAL.search(dump.read_bytes())
    assert match is not None
    return int(match.group(1))


def own_instructions(dump: Path) -> dict[str, int]:
    """Exclusive instructions per C function in a dump (recursion levels merged).

    Read here: callgrind_annotate (3.19) gives a dump taken while the server runs
    (``main`` still on the stack) all to the evaluator.
    """
    names: dict[str, str] = {}
    functions: collections.Counter[str] = collections.Counter()
    current = "?"
    call_cost_next = False

    def name(text: str) -> str:
        match = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if match is None:
            return text
        if match.group(2) is not None:
            names[match.group(1)] = match.group(2)
        return names.get(match.group(1), text)

    with dump.open(errors="replace") as lines:
        for line in lines:
            if line.startswith("fn="):
                current = re.sub(r"'\d+$", "", name(line[3:].rstrip("\n")))
            elif line.startswith("cfn="):
                name(line[4:].rstrip("\n"))
            elif line.startswith("calls="):
                call_cost_next = True  # the next cost line is the callee's, inclusive
            elif line[:1].isdigit() or line[:1] in "+-*":
                if call_cost_next:
                    call_cost_next = False
                    continue
                fields = line.split()
                if len(fields) >= 2:
                    functions[current] += int(fields[1])
    return dict(functions)


def python_counts(path: Path, trees: list[Path]) -> dict[str, int]:
    """Python calls per function from the hook's file, files named inside their tree."""
    counts: collections.Counter[str] = collections.Counter()
    for filename, _line, name, count in json.loads(path.read_text()):
        for tree in trees:
            if filename.startswith(str(tree) + os.sep):
                filename = filename[len(str(tree)) + 1 :]
                break
        counts[f"{filename}:{name}"] += count  # not the line: functions move
    return dict(counts)


def system_calls(path: Path) -> dict[str, int]:
    """System calls by name from ``strace -c``'s table; failed ones also as ``name!``."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) in (5, 6) and fields[3].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
            if len(fields) == 6:
                counts[fields[-1] + "!"] = int(fields[4])
    return counts


def counts_of(dump: Path, mode: str, trees: list[Path]) -> dict[str, int]:
    """What a dump counts, per function (or system call)."""
    if mode == "python-calls":
        return python_counts(dump, trees)
    if mode == "syscalls":
        return system_calls(dump)
    return own_instructions(dump)


def total_of(dump: Path, mode: str) -> int:
    if mode == "instructions":
        return total_instructions(dump)
    counts = counts_of(dump, mode, [])
    return sum(count for name, count in counts.items() if not name.endswith("!"))


@dataclass(slots=True)
class Measured:
    tree: str
    workload: str
    calls: int
    total: int  # instructions, Python calls or system calls
    dump: Path

    @property
    def per_call(self) -> float:
        return self.total / self.calls


def measure_tree(
    server: MeasuredServer, workloads: list[str], calls: int, warmup: int, codec: int
) -> list[Measured]:
    """Each workload's count over ``calls`` calls, one at a time on one connection."""
    results = []
    client = Client(server.host, server.port, codec)
    if server.mode == "instructions":
        # A first dump holds what ran before it: taken here, it holds only the start.
        server.dump("start")
    try:
        for name in workloads:
            workload = Workload(name, codec)
            for _ in range(warmup):
                workload.call(client)
            server.zero()
            for _ in range(calls):
                workload.call(client)
            dump = server.dump(name)
            total = total_of(dump, server.mode)
            results.append(Measured(server.name, name, calls, total, dump))
            log(f"  {server.name} {name}: {total / calls:,.1f} per call")
    finally:
        client.close()
    return results


def storage_document(target: S3Target, workdir: Path) -> dict[str, Any]:
    document = server_config(target, BucketSettings(part_size=8 << 20, concurrency=4), workdir)
    # No stale-upload reaper: its periodic listing would land in some counts.
    document["s3"]["abort_stale_after"] = 0
    return document


def differences(
    first: dict[str, int], other: dict[str, int], calls: int, top: int
) -> list[tuple[str, float, float]]:
    """The ``top`` names whose count per call differs most: (name, first, other)."""
    names = set(first) | set(other)
    rows = [(name, first.get(name, 0) / calls, other.get(name, 0) / calls) for name in names]
    rows.sort(key=lambda row: (-abs(row[2] - row[1]), row[0]))
    return [row for row in rows[:top] if row[1] != row[2]]


UNITS = {
    "instructions": "instructions per call (callgrind)",
    "python-calls": "Python function calls per call",
    "syscalls": "system calls per call (strace)",
}


def report(results: list[Measured], trees: list[Path], top: int, mode: str) -> str:
    names = list(dict.fromkeys(result.tree for result in results))
    lines = [f"{UNITS[mode]}; ratio to {names[0]}", ""]
    lines.append(f"{'workload':<12}" + "".join(f"{name:>26}" for name in names))
    by_key = {(result.tree, result.workload): result for result in results}
    workloads = list(dict.fromkeys(result.workload for result in results))
    for workload in workloads:
        base = by_key[(names[0], workload)].per_call
        cells = []
        for name in names:
            value = by_key[(name, workload)].per_call
            cells.append(f"{value:>16,.1f} ({value / base:6.3f})")
        lines.append(f"{workload:<12}" + "".join(f"{cell:>26}" for cell in cells))
    for workload in workloads if top else ():
        first = by_key[(names[0], workload)]
        first_counts = counts_of(first.dump, mode, trees)
        for name in names[1:]:
            other = by_key[(name, workload)]
            lines += ["", f"{workload}: {names[0]} -> {name}, per call (top {top})"]
            other_counts = counts_of(other.dump, mode, trees)
            for function, before, after in differences(
                first_counts, other_counts, first.calls, top
            ):
                lines.append(
                    f"{before:>12,.1f} {after:>12,.1f} {after - before:>+10,.1f}  {function}"
                )
    return "\n".join(lines)


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    path = Path(tempfile.mkdtemp(prefix="callcount-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.callcount", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("trees", nargs="+", type=Path, help="checkouts whose server runs")
    parser.add_argument("--calls", type=int, default=500, help="calls counted per workload")
    parser.add_argument("--warmup", type=int, default=100, help="calls before the count")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                        help=f"comma-separated, of {', '.join(WORKLOADS)}")  # fmt: skip
    parser.add_argument("--codec", choices=("json", "msgpack"), default="json")
    parser.add_argument("--count", choices=MODES, default="instructions")
    parser.add_argument("--top", type=int, default=0, help="names that differ most")
    parser.add_argument("--keep", type=Path, help="keep configs, logs and dumps here")
    args = parser.parse_args(argv)
    workloads = [name for name in args.workloads.split(",") if name]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    tool = {"instructions": "valgrind", "syscalls": "strace"}.get(args.count)
    if tool and shutil.which(tool) is None:
        parser.error(f"--count {args.count} needs {tool}")
    trees = [tree.resolve() for tree in args.trees]
    codec = CODEC_JSON if args.codec == "json" else CODEC_MSGPACK
    # Ctrl-C and SIGTERM stop the servers and the store this started, also when
    # launched with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    results: list[Measured] = []
    with _workdir(args.keep) as workdir, ExitStack() as stack:
        target = stack.enter_context(open_target(workdir, None))
        sizes = {WORKLOADS[name][1] for name in workloads if WORKLOADS[name][0] != "s3.Write"}
        for size in sizes - {0}:
            put_fixtures(target, [object_key(size)], os.urandom(size))
        document = storage_document(target, workdir)
        for tree, name in zip(trees, _tree_names(trees), strict=True):
            server = MeasuredServer(tree, document, workdir, name, args.count)
            log(f"{name}: {tree}, counting {args.count}")
            server.start()
            try:
                results += measure_tree(server, workloads, args.calls, args.warmup, codec)
            finally:
                server.stop()
        log("")
        log(report(results, trees, args.top, args.count))
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _tree_names(trees: list[Path]) -> list[str]:
    """Short names for the trees: their commit (+ when trio_s3rpc/ has changes), else the
    directory's name."""
    names: list[str] = []
    for tree in trees:
        name = tree.name
        git = ["git", "-C", str(tree)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        if head.returncode == 0:
            changes = subprocess.run(
                [*git, "status", "--porcelain", "--", "trio_s3rpc"], capture_output=True, text=True
            ).stdout
            name = head.stdout.strip() + ("+" if changes.strip() else "")
        while name in names:
            name += "'"
        names.append(name)
    return names


if __name__ == "__main__":
    sys.exit(main())
