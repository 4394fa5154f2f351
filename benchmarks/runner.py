"""The small-object and ListBuckets cells of a run: the plan, and running it cell by cell.

For each workload and connection count every client runs back to back, so
the peers meet the service in the same state. While a cell's window is open
the parent samples the CPU time of the server, the storage service and the
client processes, and optionally records a py-spy profile of the server.
One progress line is printed per cell; a time limit stops the plan early
(the cells not run are listed as skipped).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.clients import CellSpec, fixture_key
from benchmarks.peers import RPCPeer, is_peer, peer_name
from benchmarks.procstat import CpuReading, descendants, rss_bytes
from benchmarks.profiling import Profile, PySpyRecording, find_pyspy
from benchmarks.results import CellCores, CellResult, summarise, workload_label
from benchmarks.server import ServerProcess
from benchmarks.target import S3Target, put_fixtures
from benchmarks.units import format_size, parse_size
from benchmarks.workers import Window, WorkerPool

# Setup, connecting and draining a cell, beyond its warmup and duration.
CELL_OVERHEAD = 0.7

Progress = Callable[[str], None]


@dataclass(slots=True, frozen=True)
class PlannedCell:
    workload: str
    client: str
    size: int
    connections: int
    processes: int = 0  # client processes that run it; 0: every one in the pool

    @property
    def name(self) -> str:
        """``read:4KiB@16``, ``listbuckets@16``: how ``--profile`` names a cell
        (``listbuckets@16/1`` when one client process runs it alone)."""
        if self.workload in ("listbuckets", "exists"):
            name = f"{self.workload}@{self.connections}"
        else:
            name = f"{self.workload}:{format_size(self.size)}@{self.connections}"
        return f"{name}/{self.processes}" if self.processes else name


@dataclass(slots=True, frozen=True)
class CellSettings:
    connections: list[int]
    sizes: list[int]
    clients: list[str]
    warmup: float
    duration: float
    fixture_count: int
    repeat: int = 1
    profile: list[str] = field(default_factory=list)
    # With more than one, ListBuckets also runs from one client process alone: the RPC
    # layer's cost when the clients hold one core, not two.
    client_processes: int = 1


def normalise_cell_name(text: str) -> str:
    """``Read:4096@16`` -> ``read:4KiB@16``, so ``--profile`` accepts either spelling."""
    head, _, connections = text.strip().lower().partition("@")
    if not connections:
        return head  # a large-file cell: writefile, readfile
    workload, _, size = head.partition(":")
    if size:
        return f"{workload}:{format_size(parse_size(size))}@{int(connections)}"
    return f"{workload}@{int(connections)}"


def rpc_clients(clients: list[str]) -> list[str]:
    """The clients that speak Goridge RPC: ours and the peers' (who run ListBuckets too)."""
    return [client for client in clients if client.startswith(("rpc", "peer:"))]


def plan(settings: CellSettings) -> list[PlannedCell]:
    process_counts = [0, 1] if settings.client_processes > 1 else [0]
    cells = [
        PlannedCell("listbuckets", client, 0, connections, processes)
        for connections in settings.connections
        for processes in process_counts
        for client in rpc_clients(settings.clients)
    ]
    object_workloads = [(w, size) for size in settings.sizes for w in ("write", "read")]
    object_workloads.append(("exists", min(settings.sizes)))
    for workload, size in object_workloads:
        for connections in settings.connections:
            for client in settings.clients:
                cells.append(PlannedCell(workload, client, size, connections))
    return cells


def estimate_seconds(cells: list[PlannedCell], settings: CellSettings) -> float:
    return len(cells) * settings.repeat * (settings.warmup + settings.duration + CELL_OVERHEAD)


def median_round(rounds: list[CellResult]) -> CellResult:
    """One cell's rounds as one result: the median ops/s, the other figures of the round
    nearest to it, and the ops/s of every round."""
    speeds = [result.ops_per_second for result in rounds]
    middle = statistics.median(speeds)
    kept = min(rounds, key=lambda result: abs(result.ops_per_second - middle))
    kept.rounds = speeds
    kept.ops_per_second = round(middle, 1)
    return kept


def _groups(cells: list[PlannedCell]) -> list[tuple[int, list[PlannedCell]]]:
    """Consecutive cells of one workload, size, concurrency and client process count,
    with the first one's index."""
    groups: list[tuple[int, list[PlannedCell]]] = []
    previous_key: tuple[str, int, int, int] | None = None
    for index, cell in enumerate(cells):
        key = (cell.workload, cell.size, cell.connections, cell.processes)
        if key == previous_key:
            groups[-1][1].append(cell)
        else:
            groups.append((index, [cell]))
        previous_key = key
    return groups


class CellRunner:
    """Runs planned cells against one server and service with one worker pool."""

    def __init__(
        self,
        pool: WorkerPool,
        server: ServerProcess,
        target: S3Target,
        settings: CellSettings,
        results_dir: Path,
        progress: Progress,
        peers: dict[str, RPCPeer] | None = None,
        peer_pids: dict[str, int] | None = None,
        peer_trees: frozenset[str] = frozenset(),
    ) -> None:
        """``peers`` by name: other Goridge servers whose cells (``peer:NAME``) run beside
        ours; ``peer_pids`` the processes of those this harness started (for their CPU);
        ``peer_trees`` the peers whose CPU includes their child processes (workers)."""
        self.peers = peers or {}
        self.peer_pids = peer_pids or {}
        self.peer_trees = peer_trees
        self.pool = pool
        self.server = server
        self.target = target
        self.settings = settings
        self.results_dir = results_dir
        self.progress = progress
        self.pyspy = find_pyspy()
        self.profile_names = {normalise_cell_name(name) for name in settings.profile}

    def write_fixtures(self) -> None:
        """The objects Read and Exists cells read, one set per size."""
        for size in self.settings.sizes:
            keys = [fixture_key(size, index) for index in range(self.settings.fixture_count)]
            put_fixtures(self.target, keys, os.urandom(size))

    def run(
        self,
        cells: list[PlannedCell],
        results: list[CellResult],
        profiles: list[Profile],
        deadline: float,
    ) -> list[PlannedCell]:
        """Run the cells, appending to ``results`` as each group ends; the cells skipped for time.

        Cells of the same workload and concurrency form a group whose clients
        take turns, ``repeat`` rounds; each cell reports its median round, so
        a burst of outside load in one round of one client moves the ratio
        little (with three rounds or more, not at all).
        """
        per_cell = self.settings.warmup + self.settings.duration + CELL_OVERHEAD
        total = len(cells) * self.settings.repeat
        done = 0
        for group_start, group in _groups(cells):
            rounds: dict[PlannedCell, list[CellResult]] = {}
            try:
                for round_number in range(1, self.settings.repeat + 1):
                    for cell in group:
                        if time.monotonic() + per_cell > deadline:
                            return [c for c in cells[group_start:] if c not in rounds]
                        result, _ = self._run_one(cell, profiled=False)
                        done += 1
                        rounds.setdefault(cell, []).append(result)
                        suffix = f" (round {round_number})" if self.settings.repeat > 1 else ""
                        self.progress(f"[{done:>3}/{total}] {progress_line(result)}{suffix}")
                        self._check_server(cell)
            finally:
                results.extend(median_round(rounds[cell]) for cell in group if cell in rounds)
            for cell in group:
                if cell.client == "rpc" and cell.name in self.profile_names:
                    self._profile(cell, profiles)
        return []

    def _profile(self, cell: PlannedCell, profiles: list[Profile]) -> None:
        """Run the cell again under py-spy: its sampling takes CPU the table must not pay."""
        profiled, profile = self._run_one(cell, profiled=True)
        if profile is not None:
            profile.ops_per_second = profiled.ops_per_second
            profiles.append(profile)
            self.progress(f"      profiled: {progress_line(profiled)}")
        self._check_server(cell)

    def _check_server(self, cell: PlannedCell) -> None:
        if not self.server.alive():
            raise RuntimeError(f"the server died during {cell.name}:\n{self.server.log_tail()}")
        pid = self.peer_pids.get(peer_name(cell.client)) if is_peer(cell.client) else None
        if pid is not None and not _running(pid):
            raise RuntimeError(f"the peer {peer_name(cell.client)} died during {cell.name}")

    def _rpc_address(self, client: str) -> str:
        if is_peer(client):
            return self.peers[peer_name(client)].address
        return self.server.address

    def _server_pids(self, client: str) -> list[int]:
        """Whose CPU the cell's "server" column shows: ours, a started peer's, or nobody's."""
        if is_peer(client):
            name = peer_name(client)
            pid = self.peer_pids.get(name)
            if pid is None:
                return []
            return [pid, *descendants(pid)] if name in self.peer_trees else [pid]
        return self.server.pids

    def _run_one(self, cell: PlannedCell, profiled: bool) -> tuple[CellResult, Profile | None]:
        spec = CellSpec(
            workload=cell.workload,
            client=cell.client,
            size=cell.size,
            connections=cell.connections,
            worker=0,
            rpc_address=self._rpc_address(cell.client),
            target=self.target,
            fixture_count=self.settings.fixture_count,
        )
        window, worker_results, observed = self.pool.run_cell(
            spec,
            self.settings.warmup,
            self.settings.duration,
            lambda window: self._observe(window, cell, profiled),
            processes=cell.processes or None,
        )
        cores, rss, profile = observed
        result = summarise(
            cell.workload, cell.client, cell.size, cell.connections, window, worker_results,
            cores, rss,
        )  # fmt: skip
        return result, profile

    def _observe(
        self, window: Window, cell: PlannedCell, profiled: bool
    ) -> tuple[CellCores, int | None, Profile | None]:
        server = self._server_pids(cell.client)
        storage = list(self.target.storage_pids)
        clients = self.pool.pids
        # Our server and the started peers idle while another's cell runs, but
        # they are the benchmark's own processes, not outside load.
        idle = [*self.server.pids, *self.peer_pids.values()]
        everyone = list(dict.fromkeys(server + idle + storage + clients))
        _sleep_until(window.measure_at)
        before = CpuReading.take(everyone, time.monotonic())
        recording = self._start_profile(cell, window) if profiled else None
        _sleep_until(window.end_at)
        after = CpuReading.take(everyone, time.monotonic())
        rss = rss_bytes(server[0]) if server else None
        cores = CellCores(
            server=after.cores_since(before, server) if server else None,
            storage=after.cores_since(before, storage) if storage else None,
            clients=after.cores_since(before, clients),
            # With an external service on this machine, its CPU counts as "other".
            other=after.outside_cores_since(before, everyone),
            kernel=after.kernel_cores_since(before),
        )
        profile = recording.finish() if recording is not None else None
        return cores, rss, profile

    def _start_profile(self, cell: PlannedCell, window: Window) -> PySpyRecording | None:
        seconds = int(window.duration)
        if self.pyspy is None or seconds < 1:
            self.progress(f"cannot profile {cell.name}: py-spy not found or duration < 1 s")
            return None
        output = self.results_dir / profile_file_name(cell.name)
        return PySpyRecording(
            self.pyspy,
            self.server.pid,
            output,
            cell.name,
            seconds,
            subprocesses=self.server.workers > 1,
        )


def profile_file_name(cell_name: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"profile-{cell_name.replace(':', '-').replace('@', '-x')}-{stamp}.txt"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def progress_line(result: CellResult) -> str:
    def number(value: float | None, spec: str) -> str:
        return format(value, spec) if value is not None else "-".rjust(len(format(0.0, spec)))

    errors = f"  ERRORS {result.errors}: {result.first_error[:120]}" if result.errors else ""
    return (
        f"{workload_label(result.workload, result.size):<12} x{result.connections:<3} "
        f"{result.client:<9} {result.ops_per_second:9.0f} ops/s  "
        f"p50 {number(result.p50_ms, '7.2f')} ms  p99 {number(result.p99_ms, '7.2f')} ms  "
        f"cores: server {number(result.server_cores, '4.2f')} "
        f"storage {number(result.storage_cores, '4.2f')} "
        f"clients {number(result.client_cores, '4.2f')} "
        f"other {number(result.other_cores, '4.2f')} "
        f"kernel {number(result.kernel_cores, '4.2f')}{errors}"
    )
