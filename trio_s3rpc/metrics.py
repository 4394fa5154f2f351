"""Prometheus metrics: the Go plugin's two counters, and what it never showed.

:class:`Metrics` owns one ``prometheus_client`` registry and every metric of
the server. The RoadRunner S3 plugin's ``rr_s3_operations_total`` and
``rr_s3_errors_total`` keep its names, labels and label values (so the
queries of its ``metrics.md`` work unchanged); everything else is named
``trio_s3rpc_*``. Label values are bounded: configured bucket and server
names, method names, S3 operation names, status codes and contract error
codes; never a pathname, an upload id or a bucket name a caller made up.
Buckets registered at run time (``s3.RegisterBucket``) get a label of their
own up to :data:`MAX_REGISTERED_BUCKET_LABELS`; later ones share the empty
label with made-up names (:class:`BucketLabels`), so a caller registering
thousands of buckets cannot grow a scrape without bound. A scrape samples
the live state on the event loop and renders the exposition in a worker
thread (:meth:`Metrics.render_in_thread`).

Hot paths stay cheap: :class:`CallMetrics` binds the label children of a
(method, bucket) once and caches them, so a call costs two counter
increments and one histogram observation. Gauges that describe state (calls
in flight, connections open, a bucket's limiter) are not updated by the code
they describe: samplers read that state when a scrape asks (or, with worker
processes, once a second).

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set (see
:func:`enable_multiprocess`, which a supervisor calls before starting its
workers), every process writes its values to files in that directory and one
scrape of the supervisor (:func:`render_multiprocess`) sums them; a dead
worker's counters stay counted, its live gauges are dropped by
:func:`mark_worker_dead`.
"""

from __future__ import annotations

import os
import shutil
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)

from trio_s3rpc.errors import ChecksumMismatchError, ErrorCode, PartialMoveError, RPCError

__all__ = [
    "CONTENT_TYPE_LATEST",
    "GO_OPERATIONS",
    "MAX_REGISTERED_BUCKET_LABELS",
    "NO_BUCKET",
    "OUR_OPERATIONS",
    "BucketLabels",
    "CallMetrics",
    "Metrics",
    "SupervisorMetrics",
    "enable_multiprocess",
    "mark_worker_dead",
    "multiprocess_enabled",
    "render_multiprocess",
]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# The Go plugin's operation label for each of its methods; a Move counts as a
# copy (on the destination bucket) and a delete (on the source bucket).
GO_OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "s3.Write": ("write",),
    "s3.Read": ("read",),
    "s3.Exists": ("exists",),
    "s3.Delete": ("delete",),
    "s3.Copy": ("copy",),
    "s3.Move": ("copy", "delete"),
    "s3.ListObjects": ("list",),
    "s3.GetMetadata": ("get_metadata",),
    "s3.SetVisibility": ("set_visibility",),
    "s3.GetPublicURL": ("get_url",),
}
# Methods the Go plugin does not have (or does not count): values of our own.
OUR_OPERATIONS: Final[Mapping[str, str]] = {
    "s3.ListBuckets": "list_buckets",
    "s3.GetBucketInfo": "get_bucket_info",
    "s3.RegisterBucket": "register_bucket",
    "s3.DeleteMany": "delete_many",
    "s3.WriteFile": "write_file",
    "s3.ReadFile": "read_file",
    "s3.UploadStart": "upload_start",
    "s3.UploadChunk": "upload_chunk",
    "s3.UploadStatus": "upload_status",
    "s3.UploadFinish": "upload_finish",
    "s3.UploadAbort": "upload_abort",
    "s3.TransferStatus": "transfer_status",
    "s3.Cancel": "cancel",
}
# A call to a method no one registered: its name is the caller's, so not a label.
UNKNOWN_OPERATION: Final = "unknown"
# Calls cut short without an answer of their own (shutdown deadline, client gone).
ABANDONED: Final = "CANCELLED"

# Seconds. From a ListBuckets answered inline to a large WriteFile.
CALL_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
REQUEST_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
SAMPLE_INTERVAL: Final = 1.0
# Registered buckets (beyond the configured ones) with a bucket label of their
# own; the rest share NO_BUCKET.
MAX_REGISTERED_BUCKET_LABELS: Final = 100
# The bucket label of a call without a bucket, of a name nobody configured, and
# of registered buckets past the cap.
NO_BUCKET: Final = ""

Sampler = Callable[["Metrics"], None]


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
        # -- the Go plugin's, unchanged ----------------------------------------
        self.operations = Counter(
            "rr_s3_operations",
            "Total number of S3 operations by type, bucket, and status",
            ["operation", "bucket", "status"],
            registry=r,
        )
        self.errors = Counter(
            "rr_s3_errors",
            "Total number of S3 errors by bucket and error type",
            ["bucket", "error_type"],
            registry=r,
        )
        # -- calls -----------------------------------------------------------
        self.call_seconds = Histogram(
            "trio_s3rpc_call_duration_seconds",
            "Time to answer an s3.* call, from its frame read to its answer encoded",
            ["method", "bucket"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.bytes_written = Counter(
            "trio_s3rpc_bytes_written",
            "Object bytes written to a bucket by calls that succeeded "
            "(Write, WriteFile, UploadChunk)",
            ["bucket"],
            registry=r,
        )
        self.bytes_read = Counter(
            "trio_s3rpc_bytes_read",
            "Object bytes read from a bucket by calls that succeeded (Read, ReadFile)",
            ["bucket"],
            registry=r,
        )
        self.checksum_mismatches = Counter(
            "trio_s3rpc_checksum_mismatches",
            "Reads refused because the bytes did not match the checksum stored with them",
            ["bucket"],
            registry=r,
        )
        # -- buckets ---------------------------------------------------------
        self.bucket_in_flight = Gauge(
            "trio_s3rpc_bucket_operations_in_flight",
            "Storage requests in flight for a bucket (bounded by max_concurrent_operations)",
            ["bucket"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.bucket_waiting = Gauge(
            "trio_s3rpc_bucket_operations_waiting",
            "Storage requests waiting for a free slot of a bucket's max_concurrent_operations",
            ["bucket"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.bucket_limit = Gauge(
            "trio_s3rpc_bucket_max_concurrent_operations",
            "A bucket's max_concurrent_operations (summed over worker processes)",
            ["bucket"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.bucket_ready = Gauge(
            "trio_s3rpc_bucket_ready",
            "1 when the bucket's service answered its readiness probe recently, else 0",
            ["bucket"],
            multiprocess_mode="livemin",
            registry=r,
        )
        # -- storage requests ------------------------------------------------------
        self.storage_requests = Counter(
            "trio_s3rpc_storage_requests",
            "S3 requests by server, S3 operation and final status (HTTP status code, or the "
            "transport error code when no answer came)",
            ["server", "operation", "status"],
            registry=r,
        )
        self.storage_seconds = Histogram(
            "trio_s3rpc_storage_request_duration_seconds",
            "Time of an S3 request including its retries, until its answer's head",
            ["server", "operation"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.storage_retries = Counter(
            "trio_s3rpc_storage_retries",
            "S3 request attempts repeated after a retryable failure",
            ["server", "operation"],
            registry=r,
        )
        # -- multipart uploads ------------------------------------------------
        self.multipart_open = Gauge(
            "trio_s3rpc_multipart_uploads_open",
            "Multipart uploads this server is working on (WriteFile, Write, Copy, chunked)",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.multipart_aborts = Counter(
            "trio_s3rpc_multipart_aborts",
            "Multipart upload aborts, by result (aborted, failed: handed to the retrier)",
            ["result"],
            registry=r,
        )
        self.aborts_pending = Gauge(
            "trio_s3rpc_multipart_aborts_pending",
            "Failed aborts still being retried in the background",
            multiprocess_mode="livesum",
            registry=r,
        )
        # -- RPC server --------------------------------------------------------
        self.rpc_connections_open = Gauge(
            "trio_s3rpc_rpc_connections_open",
            "RPC client connections open",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.rpc_connections = Counter(
            "trio_s3rpc_rpc_connections", "RPC client connections accepted", registry=r
        )
        self.rpc_calls_in_flight = Gauge(
            "trio_s3rpc_rpc_calls_in_flight",
            "RPC calls received and not yet answered",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.rpc_frames_refused = Counter(
            "trio_s3rpc_rpc_frames_refused",
            "Frames refused as malformed or too large (each closes its connection)",
            registry=r,
        )

    # -- sampled state -----------------------------------------------------------

    def add_sampler(self, sampler: Sampler) -> None:
        """Have ``sampler(metrics)`` set gauges from live state before each scrape."""
        self._samplers.append(sampler)

    def sample(self) -> None:
        for sampler in self._samplers:
            sampler(self)

    async def run_sampler(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
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


def _content_length(request: Any, response: Any) -> int:
    return len(request.content)


def _response_content_length(request: Any, response: Any) -> int:
    return len(response.content)


def _response_size(request: Any, response: Any) -> int:
    return int(response.size)


# Object bytes a successful call moved, by direction.
_BYTES_WRITTEN: Final[Mapping[str, Callable[[Any, Any], int]]] = {
    "s3.Write": _content_length,
    "s3.UploadChunk": _content_length,
    "s3.WriteFile": _response_size,
}
_BYTES_READ: Final[Mapping[str, Callable[[Any, Any], int]]] = {
    "s3.Read": _response_content_length,
    "s3.ReadFile": _response_size,
}
_UPLOAD_ID_METHODS: Final = frozenset(
    {"s3.UploadChunk", "s3.UploadStatus", "s3.UploadFinish", "s3.UploadAbort"}
)
_COPY_METHODS: Final = frozenset({"s3.Copy", "s3.Move"})
_BUCKETLESS: Final = frozenset({"s3.ListBuckets", "s3.TransferStatus", "s3.Cancel"})


@dataclass(slots=True)
class CallRecord:
    """What the dispatcher learnt of one call, for :meth:`CallMetrics.finished`."""

    args: Any = None
    request: Any = None
    response: Any = None
    error: RPCError | None = None


class _Series:
    """The label children of one (method, bucket[, source bucket]), bound once.

    In one process, a call only adds to plain ints here (``pending_*``): the
    increments reach the library's values (each behind a lock) when a scrape
    flushes them, so a call costs a bisect and three additions. With worker
    processes every call goes to the shared files at once: a worker killed
    the next instant loses nothing.
    """

    __slots__ = (
        "bounds",
        "bucket",
        "latency",
        "operations",
        "pending_latency",
        "pending_ok",
        "pending_sum",
        "read",
        "source",
        "succeeded",
        "written",
    )

    def __init__(
        self, metrics: Metrics, method: str, bucket: str, source: str, operations: tuple[str, ...]
    ) -> None:
        self.bucket = bucket
        self.source = source
        self.operations = operations
        self.latency = metrics.call_seconds.labels(method, bucket)
        # The histogram's own bounds, +Inf last: bisect_left finds the bucket of
        # ``seconds <= bound`` exactly as Histogram.observe does.
        self.bounds: list[float] = list(self.latency._upper_bounds)
        self.pending_latency = [0] * len(self.bounds)
        self.pending_sum = 0.0
        self.pending_ok = 0
        # A Move's delete is on its source bucket; everything else on the bucket.
        self.succeeded = tuple(
            metrics.operations.labels(
                op, source if op == "delete" and source else bucket, "success"
            )
            for op in operations
        )
        self.written = metrics.bytes_written.labels(bucket) if method in _BYTES_WRITTEN else None
        self.read = metrics.bytes_read.labels(bucket) if method in _BYTES_READ else None

    def flush(self) -> None:
        """Move the pending counts into the library's values."""
        if self.pending_ok:
            for counter in self.succeeded:
                counter.inc(self.pending_ok)
            self.pending_ok = 0
        if self.pending_sum or any(self.pending_latency):
            values = self.latency._buckets
            for index, count in enumerate(self.pending_latency):
                if count:
                    values[index].inc(count)
                    self.pending_latency[index] = 0
            self.latency._sum.inc(self.pending_sum)
            self.pending_sum = 0.0


class BucketLabels:
    """The bucket label of a bucket name, one rule for every metric.

    Configured buckets, and the first :data:`MAX_REGISTERED_BUCKET_LABELS`
    registered ones (in registration order), are labelled with their name;
    every other name, registered or made up, gets :data:`NO_BUCKET`.
    ``buckets`` is the live registry (it only grows, in registration order).
    """

    def __init__(
        self,
        buckets: Mapping[str, object],
        configured: Collection[str],
        registered_cap: int = MAX_REGISTERED_BUCKET_LABELS,
    ) -> None:
        self._buckets = buckets
        self._cap = len(configured) + registered_cap
        self._labelled = set(configured)
        self._seen = -1

    def __call__(self, name: str) -> str:
        if name in self._labelled:
            return name
        if len(self._labelled) < self._cap and len(self._buckets) != self._seen:
            self._seen = len(self._buckets)
            for registered in list(self._buckets)[: self._cap]:
                if len(self._labelled) >= self._cap:
                    break
                self._labelled.add(registered)
            if name in self._labelled:
                return name
        return NO_BUCKET


class CallMetrics:
    """Records each answered call under the Go plugin's labels and ours.

    ``buckets`` is the live bucket registry (names of configured and
    registered buckets), ``default`` the bucket a call without one uses,
    ``upload_bucket`` the bucket of a chunked upload this process holds ("" if
    none), and ``pathname_valid`` the server's own pathname rule (a Copy's
    failure is the source bucket's when its source pathname is invalid, as
    in the Go plugin). ``labels`` names buckets in labels (by default the
    buckets in ``buckets`` now count as configured).
    """

    def __init__(
        self,
        metrics: Metrics,
        buckets: Mapping[str, object],
        default: str,
        *,
        upload_bucket: Callable[[str], str] = lambda upload_id: "",
        pathname_valid: Callable[[str], bool] = lambda pathname: True,
        labels: BucketLabels | None = None,
    ) -> None:
        self.metrics = metrics
        self._buckets = buckets
        self._bucket_label = labels or BucketLabels(buckets, list(buckets))
        self._default = default
        self._upload_bucket = upload_bucket
        self._pathname_valid = pathname_valid
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._batched = not multiprocess_enabled()
        if self._batched:
            metrics.add_sampler(lambda metrics: self.flush())

    def flush(self) -> None:
        for series in list(self._series.values()):
            series.flush()

    def label(self, requested: object) -> str:
        """The bucket label of a requested bucket name: "" unless it is configured."""
        name = (requested if isinstance(requested, str) else "") or self._default
        return self._bucket_label(name)

    def _labels(self, method: str, args: Any) -> tuple[str, str]:
        if not isinstance(args, dict) or method in _BUCKETLESS:
            return "", ""
        if method not in GO_OPERATIONS and method not in OUR_OPERATIONS:
            return "", ""
        if method in _COPY_METHODS:
            return self.label(args.get("dest_bucket")), self.label(args.get("source_bucket"))
        if method in _UPLOAD_ID_METHODS:
            upload_id = args.get("upload_id")
            bucket = self._upload_bucket(upload_id) if isinstance(upload_id, str) else ""
            return (self._bucket_label(bucket) if bucket else NO_BUCKET), ""
        if method == "s3.RegisterBucket":
            name = args.get("name")
            return (self._bucket_label(name) if isinstance(name, str) else NO_BUCKET), ""
        return self.label(args.get("bucket")), ""

    def series(self, method: str, args: Any) -> _Series:
        bucket, source = self._labels(method, args)
        key = (method, bucket, source)
        found = self._series.get(key)
        if found is None:
            operations = GO_OPERATIONS.get(method) or (
                OUR_OPERATIONS.get(method, UNKNOWN_OPERATION),
            )
            histogram_method = method if operations[0] != UNKNOWN_OPERATION else ""
            found = _Series(self.metrics, histogram_method, bucket, source, operations)
            self._series[key] = found
        return found

    def finished(
        self, method: str, record: CallRecord, error: RPCError | None, seconds: float
    ) -> None:
        """Count one call: answered (``error`` None), failed, or abandoned (code CANCELLED)."""
        series = self.series(method, record.args)
        if self._batched:
            series.pending_latency[bisect_left(series.bounds, seconds)] += 1
            series.pending_sum += seconds
            if error is None:
                series.pending_ok += 1
        else:
            series.latency.observe(seconds)
            if error is None:
                for counter in series.succeeded:
                    counter.inc()
        if error is None:
            if series.written is not None:
                series.written.inc(_BYTES_WRITTEN[method](record.request, record.response))
            elif series.read is not None:
                series.read.inc(_BYTES_READ[method](record.request, record.response))
            return
        self._failed(method, series, record.args, error)

    def _failed(self, method: str, series: _Series, args: Any, error: RPCError) -> None:
        metrics = self.metrics
        code = error.code.value
        if isinstance(error, ChecksumMismatchError):
            metrics.checksum_mismatches.labels(series.bucket).inc()
        bucket = series.bucket
        operations = series.operations
        if method in _COPY_METHODS:
            if isinstance(error, PartialMoveError):
                # A Move whose copy landed and whose source delete failed.
                metrics.operations.labels("copy", bucket, "success").inc()
                operations, bucket = ("delete",), series.source
            else:
                operations = ("copy",)
                source_pathname = args.get("source_pathname") if isinstance(args, dict) else None
                if code == ErrorCode.INVALID_PATHNAME and not (
                    isinstance(source_pathname, str) and self._pathname_valid(source_pathname)
                ):
                    bucket = series.source
        for operation in operations:
            metrics.operations.labels(operation, bucket, "error").inc()
            metrics.errors.labels(bucket, code).inc()


def abandoned_error() -> RPCError:
    """The error a call without an answer of its own is counted under."""
    return RPCError(ErrorCode.CANCELLED, "the call was cut short")


# -- samplers for the server's live state ------------------------------------------


def bucket_sampler(buckets: Mapping[str, Any], labels: BucketLabels | None = None) -> Sampler:
    """Gauges from each bucket's ``limiter`` (a trio.CapacityLimiter), summed by label
    (the buckets past the label cap add up under one)."""
    label = labels or BucketLabels(buckets, list(buckets))

    def sample(metrics: Metrics) -> None:
        totals: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for name, bucket in list(buckets.items()):
            limiter: trio.CapacityLimiter = bucket.limiter
            statistics = limiter.statistics()
            total = totals[label(name)]
            total[0] += statistics.borrowed_tokens
            total[1] += statistics.tasks_waiting
            total[2] += int(statistics.total_tokens)
        for name, (in_flight, waiting, limit) in totals.items():
            metrics.bucket_in_flight.labels(name).set(in_flight)
            metrics.bucket_waiting.labels(name).set(waiting)
            metrics.bucket_limit.labels(name).set(limit)

    return sample


def rpc_sampler(server: Any) -> Sampler:
    """Gauges and totals from an ``RPCServer``."""
    counted = _Totals()

    def sample(metrics: Metrics) -> None:
        metrics.rpc_connections_open.set(server.connection_count)
        metrics.rpc_calls_in_flight.set(server.calls_in_flight)
        counted.advance(metrics.rpc_connections, "accepted", server.connections_accepted)
        counted.advance(metrics.rpc_frames_refused, "refused", server.frames_refused)

    return sample


def uploads_sampler(open_uploads: Callable[[], int], pending_aborts: Callable[[], int]) -> Sampler:
    def sample(metrics: Metrics) -> None:
        metrics.multipart_open.set(open_uploads())
        metrics.aborts_pending.set(pending_aborts())

    return sample


class _Totals:
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
        self._restarts = _Totals()
        # The supervisor probes the buckets (its workers do not).
        self.bucket_ready = Gauge(
            "trio_s3rpc_bucket_ready",
            "1 when the bucket's service answered its readiness probe recently, else 0",
            ["bucket"],
            multiprocess_mode="livemin",
            registry=self.registry,
        )

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
