"""The metrics' label rules, and multi-process aggregation across real worker processes.

The unit tests drive :class:`CallMetrics` with the outcomes the dispatcher
reports and read the registry back through the text exposition. The
multi-process test runs ``trio-s3rpc serve`` as worker processes with
``PROMETHEUS_MULTIPROC_DIR`` set, against SeaweedFS, restarts one, and
scrapes the supervisor's aggregate: every call of every worker, the dead
one's included, in one scrape.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import trio
import yaml
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import config_dict, endpoint_server
from tests.support.services import free_port
from tests.support.workers import Service, clients_on_each_worker
from trio_s3rpc.client import RPCClient
from trio_s3rpc.config import ListenAddress
from trio_s3rpc.embedded import S3Endpoint
from trio_s3rpc.errors import ErrorCode, PartialMoveError, RPCError
from trio_s3rpc.metrics import (
    MAX_REGISTERED_BUCKET_LABELS,
    NO_BUCKET,
    BucketLabels,
    CallMetrics,
    CallRecord,
    Metrics,
    abandoned_error,
    bucket_sampler,
    mark_worker_dead,
    render_multiprocess,
)
from trio_s3rpc.metrics.families import CALL_BUCKETS
from trio_s3rpc.rpc.control import CallControl
from trio_s3rpc.rpc.methods import S3Methods, register_control_methods
from trio_s3rpc.rpc.registry import BucketLabel, Counted, MethodRegistry
from trio_s3rpc.status import HTTPServer, routes_for

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def values(exposition: bytes, *names: str) -> Values:
    found: Values = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            if sample.name in names and sample.value:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def ops(*entries: tuple[str, str, str, float]) -> Values:
    return {
        (
            "rr_s3_operations_total",
            (("bucket", bucket), ("operation", operation), ("status", status)),
        ): n
        for operation, bucket, status, n in entries
    }


def exists_only(found: Values) -> Values:
    return {key: n for key, n in found.items() if ("operation", "exists") in key[1]}


def declared_methods() -> MethodRegistry:
    """The server's methods as it declares them (handlers never called here)."""
    registry = MethodRegistry()
    S3Methods(cast(Any, None), cast(Any, None), cast(Any, None)).register(registry)
    register_control_methods(registry, CallControl())
    return registry


def recorder(metrics: Metrics) -> CallMetrics:
    return CallMetrics(
        metrics,
        declared_methods().get,
        {"uploads": object(), "archive": object()},
        "uploads",
        upload_bucket=lambda upload_id: "archive" if upload_id == "valid-token" else "",
        pathname_valid=lambda pathname: ".." not in pathname,
    )


def finish(
    calls: CallMetrics, method: str, args: Any, error: RPCError | None = None, request: Any = None
) -> None:
    calls.finished(method, CallRecord(args=args, request=request), error, 0.001)


def test_a_move_whose_delete_failed_is_a_copy_success_and_a_delete_error() -> None:
    metrics = Metrics()
    calls = recorder(metrics)
    move = {"source_bucket": "archive", "source_pathname": "a", "dest_pathname": "b"}
    finish(calls, "s3.Move", move)
    denied = PartialMoveError(ErrorCode.PERMISSION_DENIED, "the copy landed but ...")
    finish(calls, "s3.Move", move, denied)
    assert values(metrics.render(), "rr_s3_operations_total") == ops(
        ("copy", "uploads", "success", 2),
        ("delete", "archive", "success", 1),
        ("delete", "archive", "error", 1),
    )
    assert values(metrics.render(), "rr_s3_errors_total") == {
        ("rr_s3_errors_total", (("bucket", "archive"), ("error_type", "PERMISSION_DENIED"))): 1
    }


def test_a_copy_failing_on_its_source_pathname_is_the_source_buckets_error() -> None:
    metrics = Metrics()
    calls = recorder(metrics)
    bad = RPCError(ErrorCode.INVALID_PATHNAME, "pathname must not have a '..' segment")
    copy = {"source_bucket": "archive", "source_pathname": "../x", "dest_pathname": "ok"}
    finish(calls, "s3.Copy", copy, bad)
    finish(calls, "s3.Copy", copy | {"source_pathname": "fine", "dest_pathname": "../y"}, bad)
    assert values(metrics.render(), "rr_s3_operations_total") == ops(
        ("copy", "archive", "error", 1), ("copy", "uploads", "error", 1)
    )


def test_label_values_are_bounded() -> None:
    metrics = Metrics()
    calls = recorder(metrics)
    for name in ("made-up-1", "made-up-2", "made-up-3"):
        unknown = RPCError(ErrorCode.BUCKET_NOT_FOUND, "Bucket not found")
        finish(calls, "s3.Exists", {"bucket": name, "pathname": name}, unknown)
        finish(calls, f"s3.{name}", {}, RPCError(ErrorCode.METHOD_NOT_FOUND, "unknown"))
        finish(calls, "s3.UploadChunk", {"upload_id": name, "content": b""}, abandoned_error())
    chunk = {"upload_id": "valid-token", "content": "YWJj"}
    finish(calls, "s3.UploadChunk", chunk, request=SimpleNamespace(content=b"abc"))
    finish(calls, "s3.RegisterBucket", {"name": "archive"})
    finish(calls, "s3.ListBuckets", None)
    exposition = metrics.render()
    assert b"made-up" not in exposition
    assert values(exposition, "rr_s3_operations_total") == ops(
        ("exists", "", "error", 3),
        ("unknown", "", "error", 3),
        ("upload_chunk", "", "error", 3),
        ("upload_chunk", "archive", "success", 1),
        ("register_bucket", "archive", "success", 1),
        ("list_buckets", "", "success", 1),
    )
    errors = values(exposition, "rr_s3_errors_total")
    assert errors[("rr_s3_errors_total", (("bucket", ""), ("error_type", "CANCELLED")))] == 3
    assert values(exposition, "trio_s3rpc_bytes_written_total") == {
        ("trio_s3rpc_bytes_written_total", (("bucket", "archive"),)): 3
    }
    latency = values(exposition, "trio_s3rpc_call_duration_seconds_count")
    assert (
        latency[("trio_s3rpc_call_duration_seconds_count", (("bucket", ""), ("method", "")))] == 3
    )  # the unknown methods, under no name of theirs


def test_registered_buckets_past_the_cap_share_one_label() -> None:
    metrics = Metrics()
    buckets: dict[str, Any] = {
        name: SimpleNamespace(limiter=trio.CapacityLimiter(2)) for name in ("uploads", "archive")
    }
    labels = BucketLabels(buckets, ["uploads", "archive"])
    calls = CallMetrics(metrics, declared_methods().get, buckets, "uploads", labels=labels)
    metrics.add_sampler(bucket_sampler(buckets, labels))
    for index in range(10_000):
        name = f"tenant-{index:05d}"
        buckets[name] = SimpleNamespace(limiter=trio.CapacityLimiter(3))
        finish(calls, "s3.RegisterBucket", {"name": name})
        finish(
            calls,
            "s3.Write",
            {"bucket": name, "pathname": "a"},
            request=SimpleNamespace(content=b""),
        )
    finish(
        calls,
        "s3.Write",
        {"bucket": "uploads", "pathname": "a"},
        request=SimpleNamespace(content=b""),
    )
    exposition = metrics.render()
    written = values(exposition, "rr_s3_operations_total")
    labelled = {dict(key[1])["bucket"] for key in written}
    cap = MAX_REGISTERED_BUCKET_LABELS
    first = {f"tenant-{index:05d}" for index in range(cap)}
    assert labelled == first | {"uploads", NO_BUCKET}
    assert written[ops(("write", NO_BUCKET, "success", 0)).popitem()[0]] == 10_000 - cap
    limits = values(exposition, "trio_s3rpc_bucket_max_concurrent_operations")
    shared = ("trio_s3rpc_bucket_max_concurrent_operations", (("bucket", NO_BUCKET),))
    assert limits[shared] == 3 * (10_000 - cap)  # summed over the buckets that share it
    assert len(limits) == 2 + cap + 1
    # What a scrape costs stays bounded by the cap, not by the buckets registered.
    assert len(exposition) < 2_000_000


async def test_a_scrape_samples_on_the_loop_and_renders_in_a_thread() -> None:
    metrics = Metrics()
    sampled_in: list[threading.Thread] = []
    rendered_in: list[threading.Thread] = []

    class Probe:
        def collect(self) -> list[Any]:
            rendered_in.append(threading.current_thread())
            return []

    metrics.registry.register(Probe())  # type: ignore[arg-type]
    rendered_in.clear()  # registering described it, on this thread
    metrics.add_sampler(lambda metrics: sampled_in.append(threading.current_thread()))
    exposition = await metrics.render_in_thread()
    assert b"trio_s3rpc_rpc_connections_total" in exposition
    assert sampled_in == [threading.main_thread()]
    assert rendered_in and threading.main_thread() not in rendered_in


def test_batched_counts_scrape_exactly_as_direct_observations() -> None:
    # The hot path adds to plain ints and a scrape flushes them: the exposition must be
    # what Histogram.observe and Counter.inc would have made, bound values included.
    timings = [0.0, 0.00005, 0.0001, 0.001, 0.0010001, 0.3, 60.0, 1000.0, 0.001]
    metrics = Metrics()
    calls = recorder(metrics)
    reference = CollectorRegistry()
    histogram = Histogram(
        "trio_s3rpc_call_duration_seconds", "", ["method", "bucket"], buckets=CALL_BUCKETS,
        registry=reference,
    ).labels("s3.Exists", "uploads")  # fmt: skip
    for index, seconds in enumerate(timings):
        calls.finished("s3.Exists", CallRecord(args={"pathname": "a"}), None, seconds)
        histogram.observe(seconds)
        if index == 4:  # a scrape in the middle flushes; later ones add to it
            metrics.render()
    names = ["trio_s3rpc_call_duration_seconds_bucket", "trio_s3rpc_call_duration_seconds_count",
             "trio_s3rpc_call_duration_seconds_sum"]  # fmt: skip
    ours = values(metrics.render(), *names)
    assert ours == values(generate_latest(reference), *names)
    assert ours[("trio_s3rpc_call_duration_seconds_count",
                 (("bucket", "uploads"), ("method", "s3.Exists")))] == len(timings)  # fmt: skip
    assert values(metrics.render(), "rr_s3_operations_total") == ops(
        ("exists", "uploads", "success", len(timings))
    )


def worker_config(path: Path, seaweedfs: S3Endpoint, port: int) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "rpc": {"listen": f"tcp://127.0.0.1:{port}"},
                "s3": {
                    "servers": {"main": endpoint_server(seaweedfs)},
                    "buckets": {
                        "uploads": {
                            "server": "main",
                            "bucket": "test-bucket",
                            "prefix": "multiproc/",
                            "visibility_mode": "none",
                        }
                    },
                },
            }
        )
    )
    return path


def spawn_worker(config: Path, directory: Path) -> subprocess.Popen[bytes]:
    # What a supervisor's enable_multiprocess() hands its workers: the directory.
    environment = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.Popen(
        [sys.executable, "-m", "trio_s3rpc", "serve", "--config", str(config)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def start_worker(config: Path, port: int, directory: Path) -> subprocess.Popen[bytes]:
    process = spawn_worker(config, directory)
    with trio.fail_after(30):
        while True:
            try:
                await (await trio.open_tcp_stream("127.0.0.1", port)).aclose()
                return process
            except OSError:
                assert process.poll() is None, "the worker exited during startup"
                await trio.sleep(0.05)


async def stop_worker(process: subprocess.Popen[bytes], directory: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(lambda: process.wait(30)) == 0
    mark_worker_dead(process.pid, directory)


@pytest.mark.integration
async def test_one_scrape_covers_every_worker_and_counters_survive_a_restart(
    seaweedfs: S3Endpoint, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    ports = [free_port(), free_port()]
    configs = [worker_config(tmp_path / f"w{i}.yaml", seaweedfs, p) for i, p in enumerate(ports)]
    first = await start_worker(configs[0], ports[0], directory)
    second = await start_worker(configs[1], ports[1], directory)
    workers = [first, second]
    try:

        async def calls(port: int, count: int, *, keep_open: bool = False) -> RPCClient:
            rpc = await RPCClient.connect(f"tcp://127.0.0.1:{port}")
            for _ in range(count):
                await rpc.call("s3.Exists", {"pathname": "nothing-here.txt"})
            if not keep_open:
                await rpc.aclose()
            return rpc

        await calls(ports[0], 3)
        held = await calls(ports[1], 2, keep_open=True)
        # The supervisor's one address serves everyone's metrics.
        server = HTTPServer(
            ListenAddress("tcp", host="127.0.0.1", port=0),
            routes_for(
                metrics=lambda: render_multiprocess(directory),
                readiness=None,
                serving=lambda: True,
                content_type="text/plain; version=0.0.4; charset=utf-8",
            ),
        )
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(server.run)
            url = f"http://127.0.0.1:{bound.port}/metrics"

            async def scrape() -> bytes:
                async with httpx.AsyncClient() as http:
                    return (await http.get(url)).content

            exists = ops(("exists", "uploads", "success", 5))
            await trio.sleep(1.2)  # the workers sample their gauges once a second
            both = await scrape()
            assert values(both, "rr_s3_operations_total") == exists
            assert values(both, "trio_s3rpc_rpc_connections_open") == {
                ("trio_s3rpc_rpc_connections_open", ()): 1
            }
            # A worker exits and is replaced: its counts stay, its gauges go.
            await held.aclose()
            await stop_worker(first, directory)
            third = await start_worker(configs[0], ports[0], directory)
            workers.append(third)
            await calls(ports[0], 4)
            after = await scrape()
            assert values(after, "rr_s3_operations_total") == ops(
                ("exists", "uploads", "success", 9)
            )
            histogram = values(after, "trio_s3rpc_call_duration_seconds_count")
            assert histogram == {
                (
                    "trio_s3rpc_call_duration_seconds_count",
                    (("bucket", "uploads"), ("method", "s3.Exists")),
                ): 9
            }
            nursery.cancel_scope.cancel()
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.integration
async def test_serve_with_workers_one_scrape_sums_them_and_survives_a_restart(
    seaweedfs: S3Endpoint, tmp_path: Path
) -> None:
    metrics_port, status_port = free_port(), free_port()
    config = config_dict(
        endpoint_server(seaweedfs),
        {"uploads": {"bucket": "test-bucket", "prefix": "workers-metrics/",
                     "visibility_mode": "none"}},
        s3={
            "metrics": {"address": f"127.0.0.1:{metrics_port}"},
            "status": {"address": f"127.0.0.1:{status_port}", "probe_interval": "200ms"},
        },
    )  # fmt: skip
    service = Service(config, tmp_path, workers=2)
    try:
        pids = list(service.worker_pids().values())
        clients = await clients_on_each_worker(service.address, pids)
        for count, pid in zip((3, 2), pids, strict=True):  # both workers answer calls
            for _ in range(count):
                await clients[pid].call("s3.Exists", {"pathname": "nothing-here.txt"})
        for client in clients.values():
            await client.aclose()
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        async with httpx.AsyncClient() as http:
            before = (await http.get(url)).content
            # (clients_on_each_worker's own ListBuckets calls are counted too)
            assert exists_only(values(before, "rr_s3_operations_total")) == ops(
                ("exists", "uploads", "success", 5)
            )
            os.kill(pids[0], signal.SIGKILL)
            await trio.to_thread.run_sync(service.wait_for_log, "event=worker_ready slot=", 30, 3)
            restarted = list(service.worker_pids().values())
            clients = await clients_on_each_worker(service.address, restarted)
            for client in clients.values():
                await client.call("s3.Exists", {"pathname": "nothing-here.txt"})
                await client.aclose()
            after = (await http.get(url)).content
            # The killed worker's counts are still there, beside its successor's.
            assert exists_only(values(after, "rr_s3_operations_total")) == ops(
                ("exists", "uploads", "success", 7)
            )
            assert values(after, "trio_s3rpc_worker_restarts_total") == {
                ("trio_s3rpc_worker_restarts_total", ()): 1
            }
            latency = values(after, "trio_s3rpc_call_duration_seconds_count")
            exists = ("trio_s3rpc_call_duration_seconds_count",
                      (("bucket", "uploads"), ("method", "s3.Exists")))  # fmt: skip
            assert latency[exists] == 7
            status = f"http://127.0.0.1:{status_port}"
            assert (await http.get(f"{status}/health")).status_code == 200
            with trio.fail_after(30):
                while (await http.get(f"{status}/ready")).status_code != 200:
                    await trio.sleep(0.1)
            ready = values((await http.get(url)).content, "trio_s3rpc_bucket_ready")
            assert ready == {("trio_s3rpc_bucket_ready", (("bucket", "uploads"),)): 1}
        assert service.stop() == 0
    finally:
        service.stop()


def test_every_method_declares_how_it_is_counted() -> None:
    registry = declared_methods()
    undeclared = [name for name in registry.names() if registry.get(name).counted is None]  # type: ignore[union-attr]
    assert undeclared == []
    # Methods the old name tables missed were counted as "unknown"; now under their own.
    metrics = Metrics()
    calls = recorder(metrics)
    finish(calls, "s3.GetUploadURL", {"bucket": "archive", "pathname": "a"})
    assert values(metrics.render(), "rr_s3_operations_total") == ops(
        ("get_upload_url", "archive", "success", 1)
    )


def test_a_new_method_is_counted_from_its_declaration_alone() -> None:
    async def frobnicate(request: Any) -> Any:
        raise AssertionError("never called")

    registry = declared_methods()
    registry.add(
        "s3.Frobnicate",
        SleepLikeRequest,
        SleepLikeRequest,
        frobnicate,
        counted=Counted(("frobnicate",), BucketLabel.COPY),
    )
    metrics = Metrics()
    calls = CallMetrics(
        metrics, registry.get, {"uploads": object(), "archive": object()}, "uploads"
    )
    finish(calls, "s3.Frobnicate", {"dest_bucket": "archive", "source_bucket": "uploads"})
    denied = RPCError(ErrorCode.PERMISSION_DENIED, "no")
    finish(calls, "s3.Frobnicate", {"dest_bucket": "archive"}, denied)
    assert values(metrics.render(), "rr_s3_operations_total") == ops(
        ("frobnicate", "archive", "success", 1), ("frobnicate", "archive", "error", 1)
    )
    latency = values(metrics.render(), "trio_s3rpc_call_duration_seconds_count")
    assert latency == {
        (
            "trio_s3rpc_call_duration_seconds_count",
            (("bucket", "archive"), ("method", "s3.Frobnicate")),
        ): 2
    }


@dataclass(slots=True, frozen=True)
class SleepLikeRequest:
    seconds: float = 0.0
