"""Prometheus metrics of the server: the metric families (``families.py``), each
answered call counted from its method's declaration (``calls.py``), and the
samplers that read live state when a scrape asks (``samplers.py``)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from trio_s3rpc.metrics.calls import (
    MAX_REGISTERED_BUCKET_LABELS,
    UNKNOWN_OPERATION,
    BucketLabels,
    CallMetrics,
    CallRecord,
    abandoned_error,
)
from trio_s3rpc.metrics.families import (
    MULTIPROC_ENV,
    NO_BUCKET,
    SAMPLE_INTERVAL,
    Metrics,
    RequestObserver,
    SupervisorMetrics,
    enable_multiprocess,
    mark_worker_dead,
    multiprocess_enabled,
    render_multiprocess,
)
from trio_s3rpc.metrics.samplers import bucket_sampler, rpc_sampler, uploads_sampler

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MAX_REGISTERED_BUCKET_LABELS",
    "MULTIPROC_ENV",
    "NO_BUCKET",
    "SAMPLE_INTERVAL",
    "UNKNOWN_OPERATION",
    "BucketLabels",
    "CallMetrics",
    "CallRecord",
    "Metrics",
    "RequestObserver",
    "SupervisorMetrics",
    "abandoned_error",
    "bucket_sampler",
    "enable_multiprocess",
    "mark_worker_dead",
    "multiprocess_enabled",
    "render_multiprocess",
    "rpc_sampler",
    "uploads_sampler",
]
