"""Each answered call, counted under the Go plugin's labels and ours.

How a method is counted is declared with the method (``rpc/registry.py``'s
:class:`~trio_s3rpc.rpc.registry.Counted`: its operation label, which bucket
labels it, which bytes it moved); :class:`CallMetrics` reads that declaration
and holds no table of method names of its own.

Hot paths stay cheap: the label children of a (method, bucket) are bound
once and cached (:class:`_Series`). In one process a call only adds to plain
ints: the latency histogram is this module's own collector
(:class:`CallLatency`, which a scrape reads from a snapshot taken on the event
loop), and success counts reach the library's counters when a scrape flushes
them. With worker processes every call goes to the shared files at once, so
a worker killed the next instant loses nothing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from trio_s3rpc.errors import ChecksumMismatchError, ErrorCode, PartialMoveError, RPCError
from trio_s3rpc.metrics.families import CALL_BOUNDS, NO_BUCKET, Metrics, multiprocess_enabled
from trio_s3rpc.rpc.registry import BucketLabel, Counted, Method

# Registered buckets (beyond the configured ones) with a bucket label of their
# own; the rest share NO_BUCKET.
MAX_REGISTERED_BUCKET_LABELS: Final = 100
# A call to a method no one registered: its name is the caller's, so not a label.
UNKNOWN_OPERATION: Final = "unknown"
_UNKNOWN: Final = Counted((UNKNOWN_OPERATION,), BucketLabel.NONE)


@dataclass(slots=True)
class CallRecord:
    """What the dispatcher learnt of one call, for :meth:`CallMetrics.finished`."""

    args: Any = None
    request: Any = None
    response: Any = None
    error: RPCError | None = None


class _Series:
    """The label children of one (method, bucket[, source bucket]), bound once."""

    __slots__ = (
        "bucket",
        "counted",
        "histogram",
        "latency",
        "pending_ok",
        "read",
        "source",
        "succeeded",
        "written",
    )

    def __init__(
        self, metrics: Metrics, method: str, bucket: str, source: str, counted: Counted
    ) -> None:
        self.bucket = bucket
        self.source = source
        self.counted = counted
        latency = metrics.call_latency
        self.latency = latency.child(method, bucket) if latency is not None else None
        histogram = metrics.call_seconds
        self.histogram = histogram.labels(method, bucket) if histogram is not None else None
        self.pending_ok = 0
        # A Move's delete is on its source bucket; everything else on the bucket.
        self.succeeded = tuple(
            metrics.operations.labels(
                op, source if op == "delete" and source else bucket, "success"
            )
            for op in counted.operations
        )
        self.written = metrics.bytes_written.labels(bucket) if counted.written else None
        self.read = metrics.bytes_read.labels(bucket) if counted.read else None

    def flush(self) -> None:
        """Move the pending success counts into the library's counters."""
        if self.pending_ok:
            for counter in self.succeeded:
                counter.inc(self.pending_ok)
            self.pending_ok = 0


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

    ``methods`` finds a method's declaration by name (``MethodRegistry.get``);
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
        methods: Callable[[str], Method[Any, Any] | None],
        buckets: Mapping[str, object],
        default: str,
        *,
        upload_bucket: Callable[[str], str] = lambda upload_id: "",
        pathname_valid: Callable[[str], bool] = lambda pathname: True,
        labels: BucketLabels | None = None,
    ) -> None:
        self.metrics = metrics
        self._methods = methods
        self._counted: dict[str, Counted] = {}
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

    def counted(self, method: str) -> Counted:
        """How calls to ``method`` are counted (as unknown when nothing declares it)."""
        found = self._counted.get(method)
        if found is None:
            declared = self._methods(method)
            found = _UNKNOWN if declared is None or declared.counted is None else declared.counted
            if declared is not None:
                # Names nobody registered are the callers': never kept.
                self._counted[method] = found
        return found

    def _labels(self, counted: Counted, args: Any) -> tuple[str, str]:
        rule = counted.bucket
        if rule is BucketLabel.NONE or not isinstance(args, dict):
            return "", ""
        if rule is BucketLabel.BUCKET:
            return self.label(args.get("bucket")), ""
        if rule is BucketLabel.COPY:
            return self.label(args.get("dest_bucket")), self.label(args.get("source_bucket"))
        if rule is BucketLabel.UPLOAD:
            upload_id = args.get("upload_id")
            bucket = self._upload_bucket(upload_id) if isinstance(upload_id, str) else ""
            return (self._bucket_label(bucket) if bucket else NO_BUCKET), ""
        name = args.get("name")
        return (self._bucket_label(name) if isinstance(name, str) else NO_BUCKET), ""

    def series(self, method: str, args: Any) -> _Series:
        counted = self.counted(method)
        bucket, source = self._labels(counted, args)
        key = (method, bucket, source)
        found = self._series.get(key)
        if found is None:
            histogram_method = "" if counted is _UNKNOWN else method
            found = _Series(self.metrics, histogram_method, bucket, source, counted)
            self._series[key] = found
        return found

    def finished(
        self, method: str, record: CallRecord, error: RPCError | None, seconds: float
    ) -> None:
        """Count one call: answered (``error`` None), failed, or abandoned (code CANCELLED)."""
        series = self.series(method, record.args)
        latency = series.latency
        if latency is not None:
            latency.counts[bisect_left(CALL_BOUNDS, seconds)] += 1
            latency.total += seconds
        elif series.histogram is not None:
            series.histogram.observe(seconds)
        if error is None:
            if self._batched:
                series.pending_ok += 1
            else:
                for counter in series.succeeded:
                    counter.inc()
            counted = series.counted
            if series.written is not None and counted.written is not None:
                series.written.inc(counted.written(record.request, record.response))
            elif series.read is not None and counted.read is not None:
                series.read.inc(counted.read(record.request, record.response))
            return
        self._failed(series, record.args, error)

    def _failed(self, series: _Series, args: Any, error: RPCError) -> None:
        metrics = self.metrics
        code = error.code.value
        if isinstance(error, ChecksumMismatchError):
            metrics.checksum_mismatches.labels(series.bucket).inc()
        bucket = series.bucket
        operations = series.counted.operations
        if series.counted.bucket is BucketLabel.COPY:
            # A failed copy or move counts as its first operation (the copy), unless
            # the copy landed and what follows failed (a Move's source delete).
            if isinstance(error, PartialMoveError):
                metrics.operations.labels(operations[0], bucket, "success").inc()
                operations, bucket = operations[1:], series.source
            else:
                operations = operations[:1]
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
