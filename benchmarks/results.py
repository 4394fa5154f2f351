"""The records a run produces, and the arithmetic that turns raw latencies into them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmarks.units import MIB, format_size
from benchmarks.workers import Window, WorkerResult
from trio_s3rpc.s3.parts import plan_parts

CLIENT_LABELS = {
    "rpc": "trio-s3rpc (RPC, JSON codec)",
    "rpc-msgpack": "trio-s3rpc (RPC, msgpack codec)",
    "transport": "S3Transport floor (our stack, no RPC)",
    "httpx": "httpx+botocore floor (naive trio)",
    "boto3": "boto3 (threads)",
}


def client_label(client: str) -> str:
    """What a client is, for legends; ``peer:NAME`` is another Goridge server."""
    if client.startswith("peer:"):
        name = client.removeprefix("peer:")
        codec = "msgpack" if name.endswith("-msgpack") else "JSON"
        return f"{name.removesuffix('-msgpack')} (Goridge RPC peer, {codec} codec)"
    return CLIENT_LABELS.get(client, client)


@dataclass(slots=True)
class CellResult:
    """One workload, one client, one concurrency: throughput, latency, what it cost."""

    workload: str
    client: str
    size: int
    connections: int
    seconds: float
    operations: int
    ops_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    errors: int
    first_error: str
    server_cores: float | None
    storage_cores: float | None
    client_cores: float | None
    other_cores: float | None  # user processes outside the benchmark
    kernel_cores: float | None  # interrupts and kernel threads (networking, writeback)
    server_rss_mib: float | None
    rounds: list[float] = field(default_factory=list)  # ops/s of each round (median reported)
    client_processes: int = 1  # how many client processes shared the connections

    @property
    def label(self) -> str:
        return workload_label(self.workload, self.size)


@dataclass(slots=True)
class LargeResult:
    """One large-file transfer: its speed and the peak memory growth of the process doing it."""

    operation: str  # "WriteFile" (upload) or "ReadFile" (download)
    client: str  # "rpc" or "boto3"
    size: int
    seconds: float
    mib_per_second: float
    rss_growth_mib: float
    rss_process: str  # whose memory: "server" for rpc, "client" for boto3
    bound_mib: float | None
    within_bound: bool | None
    server_cores: float | None
    storage_cores: float | None
    client_cores: float | None  # the harness process, where boto3 runs; None for rpc
    other_cores: float | None  # user processes outside the benchmark
    kernel_cores: float | None  # interrupts and kernel threads (networking, writeback)
    verified: bool


@dataclass(slots=True, frozen=True)
class CellCores:
    """Cores used during a cell's window, by whom (None where unknown)."""

    server: float | None
    storage: float | None
    clients: float | None
    other: float | None
    kernel: float | None


def workload_label(workload: str, size: int) -> str:
    if workload == "listbuckets":
        return "ListBuckets"
    name = {"write": "Write", "read": "Read", "exists": "Exists"}[workload]
    return name if workload == "exists" else f"{name} {format_size(size)}"


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def memory_bound(part_size: int, concurrency: int, upload_size: int = 0) -> int:
    """Issue 5's bound on the server's peak RSS growth during one transfer.

    For an upload of ``upload_size`` bytes the part size is the planned one
    (``s3/parts.py``: grown so the upload fits S3's 10,000 parts).
    """
    return plan_parts(upload_size, part_size).part_size * (concurrency + 2) + 32 * MIB


def summarise(
    workload: str,
    client: str,
    size: int,
    connections: int,
    window: Window,
    results: list[WorkerResult],
    cores: CellCores,
    server_rss: int | None,
) -> CellResult:
    """Merge the workers' results of one cell."""
    latencies = sorted(latency for result in results for latency in result.latencies)
    errors = sum(result.errors for result in results)
    first_error = next((result.first_error for result in results if result.first_error), "")
    seconds = window.duration

    def ms(value: float) -> float:
        return round(value * 1000, 3)

    return CellResult(
        workload=workload,
        client=client,
        size=size,
        connections=connections,
        seconds=round(seconds, 3),
        operations=len(latencies),
        ops_per_second=round(len(latencies) / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=ms(percentile(latencies, 0.50)) if latencies else None,
        p99_ms=ms(percentile(latencies, 0.99)) if latencies else None,
        mean_ms=ms(sum(latencies) / len(latencies)) if latencies else None,
        errors=errors,
        first_error=first_error,
        server_cores=_round(cores.server),
        storage_cores=_round(cores.storage),
        client_cores=_round(cores.clients),
        other_cores=_round(cores.other),
        kernel_cores=_round(cores.kernel),
        server_rss_mib=round(server_rss / MIB, 1) if server_rss is not None else None,
        client_processes=len(results),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
