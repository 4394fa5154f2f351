"""Prometheus metrics: the Go plugin's two counters, and what it never showed.

:class:`Metrics` owns one ``prometheus_client`` registry and every metric
family of a server process. The RoadRunner S3 plugin's
``rr_s3_operations_total`` and ``rr_s3_errors_total`` keep its names, labels
and label values (so the queries of its ``metrics.md`` work unchanged);
everything else is named ``trio_s3rpc_*``. Label values are bounded:
configured bucket and server names, method names, S3 operation names, status
codes and contract error codes; never a pathname, an upload id or a bucket
name a caller made up (``calls.py``'s :class:`BucketLabels`). A scrape
samples the live state on the event loop and renders the exposition in a
worker thread (:meth:`Metrics.render_in_thread`). Gauges that describe state
(calls in flight, connections open, a bucket's limiter) are not updated by
the code they describe: samplers (``samplers.py``) read that state when a
scrape asks (or, with worker processes, once a second).

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set (see
:func:`enable_multiprocess`, which a supervisor calls before starting its
workers), every process writes its values to files in that directory and one
scrape of the supervisor (:func:`render_multiprocess`) sums them; a dead
worker's counters stay counted, its live gauges are dropped by
:func:`mark_worker_dead`.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import trio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. From a ListBuckets answered inline to a large WriteFile.
CALL_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
# The call histogram's upper bounds, +Inf last: bisect_left finds the bucket of
# ``seconds <= bound`` exactly as prometheus_client's Histogram.observe does.
CALL_BOUNDS: Final = (*CALL_BUCKETS, float("inf"))
_LE: Final = tuple(floatToGoString(bound) for bound in CALL_BOUNDS)  # type: ignore[no-untyped-call]
REQUEST_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
SAMPLE_INTERVAL: Final = 1.0
# The bucket label of a call without a bucket, of a name nobody configured, and
# of registered buckets past the cap.
NO_BUCKET: Final = ""

Sampler = Callable[["Metrics"], None]


class _Latency:
    """One (method, bucket)'s latency: counts per bucket of ``CALL_BOUNDS`` and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(CALL_BOUNDS)
        self.total = 0.0


CALL_SECONDS: Final = "trio_s3rpc_call_duration_seconds"
CALL_SECONDS_HELP: Final = "Time to answer an s3.* call, from its frame read to its answer encoded"


def bucket_ready_gauge(registry: CollectorRegistry) -> Gauge:
    """``trio_s3rpc_bucket_ready``: set by the process that probes the buckets
    (the server alone, or a supervisor for its workers)."""
    return Gauge(
        "trio_s3rpc_bucket_ready",
        "1 when the bucket's service answered its readiness probe recently, else 0",
        ["bucket"],
        multiprocess_mode="livemin",
        registry=registry,
    )


class CallLatency(Collector):
    """``trio_s3rpc_call_duration_seconds`` of one process, kept as plain numbers.

    :meth:`snapshot` (a sampler, on the event loop) copies the counts;
    :meth:`collect` (in the rendering thread) reads only the copy, so a
    scrape sees every series at one instant.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _Latency] = {}
        self._snapshot: list[tuple[tuple[str, str], list[int], float]] = []

    def child(self, method: str, bucket: str) -> _Latency:
        found = self._series.get((method, bucket))
        if found is None:
            found = self._series[(method, bucket)] = _Latency()
        return found

    def snapshot(self, metrics: Metrics | None = None) -> None:
        self._snapshot = [
            (labels, list(series.counts), series.total) for labels, series in self._series.items()
        ]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(CALL_SECONDS, CALL_SECONDS_HELP, labels=["method", "bucket"])
        for labels, counts, total in self._snapshot:
            cumulative = 0
            buckets = []
            for le, count in zip(_LE, counts, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            family.add_metric(list(labels), buckets, total)
        yield family


class Metrics:
    """Every metric of one server process, in one registry."""

    def __init__(self) -> None:
        # No *_created series: RoadRunner's Go client sends none, and they
        # would double every counter's series (a process-wide setting).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._samplers: list[Sampler] = []
        # One rendering thread at a time: concurrent scrapes queue for it.
        self._renderer = trio.CapacityLimiter(1)
        r = self.registry
        counter = functools.partial(Counter, registry=r)
        live_gauge = functools.partial(Gauge, multiprocess_mode="livesum", registry=r)
        # -- the Go plugin's, unchanged ----------------------------------------
        self.operations = counter(
            "rr_s3_operations",
            "Total number of S3 operations by type, bucket, and status",
            ["operation", "bucket", "status"],
        )
        self.errors = counter(
            "rr_s3_errors",
            "Total number of S3 errors by bucket and error type",
            ["bucket", "error_type"],
        )
        # -- calls -----------------------------------------------------------
        # One process: plain numbers (CallLatency); workers: the library's shared files.
        self.call_latency: CallLatency | None = None
        self.call_seconds: Histogram | None = None
        if multiprocess_enabled():
            self.call_seconds = Histogram(
                CALL_SECONDS,
                CALL_SECONDS_HELP,
                ["method", "bucket"],
                buckets=CALL_BUCKETS,
                registry=r,
            )
        else:
            self.call_latency = CallLatency()
            r.register(self.call_latency)
            self.add_sampler(self.call_latency.snapshot)
        self.bytes_written = counter(
            "trio_s3rpc_bytes_written",
            "Object bytes written to a bucket by calls that succeeded "
            "(Write, WriteFile, UploadChunk)",
            ["bucket"],
        )
        self.bytes_read = counter(
            "trio_s3rpc_bytes_read",
            "Object bytes read from a bucket by calls that succeeded (Read, ReadFile)",
            ["bucket"],
        )
        self.checksum_mismatches = counter(
            "trio_s3rpc_checksum_mismatches",
            "Reads refused because the bytes did not match the checksum stored with them",
            ["bucket"],
        )
        # -- buckets ---------------------------------------------------------
        self.bucket_in_flight = live_gauge(
            "trio_s3rpc_bucket_operations_in_flight",
            "Storage requests in flight for a bucket (bounded by max_concurrent_operations)",
            ["bucket"],
        )
        self.bucket_waiting = live_gauge(
            "trio_s3rpc_bucket_operations_waiting",
            "Storage requests waiting for a free slot of a bucket's max_concurrent_operations",
            ["bucket"],
        )
        self.bucket_limit = live_gauge(
            "trio_s3rpc_bucket_max_concurrent_operations",
            "A bucket's max_concurrent_operations (summed over worker processes)",
            ["bucket"],
        )
        self.bucket_ready = bucket_ready_gauge(r)
        # -- storage requests ------------------------------------------------------
        self.storage_requests = counter(
            "trio_s3rpc_storage_requests",
            "S3 requests by server, S3 operation and final status (HTTP status code, or the "
            "transport error code when no answer came)",
            ["server", "operation", "status"],
        )
        self.storage_seconds = Histogram(
            "trio_s3rpc_storage_request_duration_seconds",
            "Time of an S3 request including its retries, until its answer's head",
            ["server", "operation"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.storage_retries = counter(
            "trio_s3rpc_storage_retries",
            "S3 request attempts repeated after a retryable failure",
            ["server", "operation"],
        )
        # -- multipart uploads ------------------------------------------------
        self.multipart_open = live_gauge(
            "trio_s3rpc_multipart_uploads_open",
            "Multipart uploads this server is working on (WriteFile, Write, Copy, chunked)",
        )
        self.multipart_aborts = counter(
            "trio_s3rpc_multipart_aborts",
            "Multipart upload aborts, by result (aborted, failed: handed to the retrier)",
            ["result"],
        )
        self.aborts_pending = live_gauge(
            "trio_s3rpc_multipart_aborts_pending",
            "Failed aborts still being retried in the background",
        )
        # -- RPC server --------------------------------------------------------
        self.rpc_connections_open = live_gauge(
            "trio_s3rpc_rpc_connections_open",
            "RPC client connections open",
        )
        self.rpc_connections = Counter(
            "trio_s3rpc_rpc_connections", "RPC client connections accepted", registry=r
        )
        self.rpc_calls_in_flight = live_gauge(
            "trio_s3rpc_rpc_calls_in_flight",
            "RPC calls received and not yet answered",
        )
        self.rpc_frames_refused = counter(
            "trio_s3rpc_rpc_frames_refused",
            "Frames refused as malformed or too large (each closes its connection)",
        )

    # -- sampled state -----------------------------------------------------------

    def add_sampler(self, sampler: Sampler) -> None:
        """Have ``sampler(metrics)`` set gauges from live state before each scrape."""
        self._samplers.append(sampler)

    def sample(self) -> None:
        for sampler in self._samplers:
            sampler(self)

    async def run_sampler(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """With worker processes: sample once a second, for the supervisor's scrapes."""
        task_status.started()
        while True:
            self.sample()
            await trio.sleep(SAMPLE_INTERVAL)

    def render(self) -> bytes:
        """The text exposition of this process (every worker's, in multi-process mode)."""
        self.sample()
        return self._exposition()

    async def render_in_thread(self) -> bytes:
        """:meth:`render` for a scrape: state sampled here, the text made in a worker thread.

        Sampling reads the server's live state, so it stays on the event loop
        (bounded by the label cap); rendering and reading the multi-process
        files take the registry's locks only, so they run beside the RPC traffic.
        """
        self.sample()
        return await trio.to_thread.run_sync(self._exposition, limiter=self._renderer)

    def _exposition(self) -> bytes:
        if multiprocess_enabled():
            return render_multiprocess()
        return bytes(generate_latest(self.registry))

    # -- storage requests ------------------------------------------------------

    def request_observer(self, server: str) -> RequestObserver:
        return RequestObserver(self, server)


class RequestObserver:
    """Records one server's S3 requests; children cached per (operation, status)."""

    __slots__ = ("_metrics", "_requests", "_retries", "_seconds", "_server")

    def __init__(self, metrics: Metrics, server: str) -> None:
        self._metrics = metrics
        self._server = server
        self._requests: dict[tuple[str, str], Any] = {}
        self._seconds: dict[str, Any] = {}
        self._retries: dict[str, Any] = {}

    def __call__(self, operation: str, status: str, seconds: float, retries: int) -> None:
        counter = self._requests.get((operation, status))
        if counter is None:
            counter = self._metrics.storage_requests.labels(self._server, operation, status)
            self._requests[(operation, status)] = counter
        counter.inc()
        if operation == "AbortMultipartUpload":
            # 404: the upload is gone already, which is what the abort wanted.
            result = "aborted" if status in ("200", "204", "404") else "failed"
            self._metrics.multipart_aborts.labels(result).inc()
        histogram = self._seconds.get(operation)
        if histogram is None:
            histogram = self._metrics.storage_seconds.labels(self._server, operation)
            self._seconds[operation] = histogram
        histogram.observe(seconds)
        if retries:
            retried = self._retries.get(operation)
            if retried is None:
                retried = self._metrics.storage_retries.labels(self._server, operation)
                self._retries[operation] = retried
            retried.inc(retries)


# -- calls ---------------------------------------------------------------------


class Totals:
    """Turns totals kept as plain ints elsewhere into counter increments."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def advance(self, counter: Any, name: str, total: int) -> None:
        delta = total - self._seen.get(name, 0)
        if delta > 0:
            counter.inc(delta)
            self._seen[name] = total


# -- multi-process mode -----------------------------------------------------------


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def enable_multiprocess(directory: str | os.PathLike[str], *, clear: bool = True) -> Path:
    """Switch this process (and every child it starts) to multi-process metrics.

    A supervisor calls this before it starts its workers: the directory is
    emptied of a previous run's files (``clear``), ``PROMETHEUS_MULTIPROC_DIR``
    is set in the environment the workers inherit, and metrics created from
    now on in this process write to that directory too (the supervisor's own
    worker-restart counter). Each worker creates its :class:`Metrics` as
    usual, and runs :meth:`Metrics.run_sampler`; the supervisor serves
    :func:`render_multiprocess` and calls :func:`mark_worker_dead` for each
    worker that exits.
    """
    path = Path(directory)
    if clear and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


def render_multiprocess(directory: str | os.PathLike[str] | None = None) -> bytes:
    """Every process's metrics summed, as one exposition (the supervisor's /metrics)."""
    registry = CollectorRegistry()
    path = None if directory is None else str(directory)
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))


def mark_worker_dead(pid: int, directory: str | os.PathLike[str] | None = None) -> None:
    """Drop a dead worker's live gauges; its counters and histograms stay counted."""
    path = None if directory is None else str(directory)
    multiprocess.mark_process_dead(pid, path=path)  # type: ignore[no-untyped-call]


class SupervisorMetrics:
    """The metrics side of a supervisor that runs the server as worker processes.

    Create it before the first worker starts (it calls
    :func:`enable_multiprocess`, so the workers inherit the directory through
    the environment); serve :meth:`render` on ``s3.metrics.address`` (for
    instance with ``status.HTTPServer`` and ``status.routes_for``); call
    :meth:`worker_exited` for each worker that exits, with ``restarted`` when
    a new one takes its place. Counters of every worker, dead or alive, are in
    every scrape; gauges only of the live ones.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = enable_multiprocess(directory)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.worker_restarts = Counter(
            "trio_s3rpc_worker_restarts",
            "Worker processes restarted by the supervisor after they exited",
            registry=self.registry,
        )
        self._restarts = Totals()
        # The supervisor probes the buckets (its workers do not).
        self.bucket_ready = bucket_ready_gauge(self.registry)

    def worker_exited(self, pid: int, *, restarted: bool) -> None:
        mark_worker_dead(pid, self.directory)
        if restarted:
            self.worker_restarts.inc()

    def count_restarts(self, total: int) -> None:
        """Bring the restart counter up to a supervisor's own running total."""
        self._restarts.advance(self.worker_restarts, "restarts", total)

    def render(self) -> bytes:
        return render_multiprocess(self.directory)

    async def render_in_thread(self) -> bytes:
        """:meth:`render` in a worker thread: reading every worker's files takes a while."""
        return await trio.to_thread.run_sync(self.render)
