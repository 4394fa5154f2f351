"""Samplers: gauges and totals read from the server's live state when a scrape asks.

The state's owners (the bucket registry, the RPC server, the upload book) do
not update metrics themselves; each sampler reads them on the event loop
before a scrape renders (or once a second, with worker processes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import trio

from trio_s3rpc.metrics.calls import BucketLabels
from trio_s3rpc.metrics.families import Metrics, Sampler, Totals


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
    counted = Totals()

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
