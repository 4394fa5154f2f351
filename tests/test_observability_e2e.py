"""Metrics, health and readiness end to end: RPC calls on SeaweedFS, then a scrape.

The scrape is parsed with prometheus-client's own parser; the counts are the
Go plugin's names and labels (so its Grafana queries work unchanged), and
ours beside them. Readiness follows a SeaweedFS that is stopped and started
again behind a fixed address.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.proxy import TCPProxy
from tests.support.server import config_dict, endpoint_server, running_app
from tests.test_integrity_e2e import corrupt
from trio_s3rpc.client import RemoteError, RPCClient
from trio_s3rpc.embedded import EmbeddedSeaweedFS, S3Endpoint

pytestmark = pytest.mark.integration

OBSERVED = {"metrics": {"address": "127.0.0.1:0"}, "status": {"address": "127.0.0.1:0"}}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: str, names: Iterable[str]) -> Samples:
    """{(sample name, labels): value} of the wanted samples, zeros left out."""
    wanted = set(names)
    found: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in wanted and sample.value:
                found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def op(operation: str, bucket: str, status: str) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"operation": operation, "bucket": bucket, "status": status}
    return "rr_s3_operations_total", frozenset(labels.items())


def err(bucket: str, error_type: str) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"bucket": bucket, "error_type": error_type}
    return "rr_s3_errors_total", frozenset(labels.items())


async def scrape(url: str) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.get(url)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


async def expect_error(rpc: RPCClient, method: str, args: dict[str, Any], code: str) -> None:
    with pytest.raises(RemoteError) as caught:
        await rpc.call(method, args)
    assert caught.value.code == code


async def test_a_known_call_sequence_scrapes_as_exactly_those_counts(
    seaweedfs: S3Endpoint,
) -> None:
    config = config_dict(
        endpoint_server(seaweedfs),
        {
            "uploads": {"bucket": "test-bucket", "prefix": "obs/", "visibility_mode": "none"},
            "archive": {"bucket": "test-bucket-2", "prefix": "obs/", "visibility_mode": "none"},
        },
        s3=OBSERVED,
    )
    calls: Counter[tuple[str, str]] = Counter()
    async with running_app(config) as (app, address):
        async with await RPCClient.connect(address) as rpc:

            async def call(method: str, args: dict[str, Any], bucket: str) -> Any:
                calls[(method, bucket)] += 1
                return await rpc.call(method, args)

            async def fail(method: str, args: dict[str, Any], bucket: str, code: str) -> None:
                calls[(method, bucket)] += 1
                await expect_error(rpc, method, args, code)

            hello = b"hello, metrics"
            await call("s3.Write", {"pathname": "a.txt", "content": b64(hello)}, "uploads")
            await call(
                "s3.Write",
                {"bucket": "uploads", "pathname": "b.txt", "content": b64(b"x" * 100)},
                "uploads",
            )
            read = await call("s3.Read", {"pathname": "a.txt"}, "uploads")
            assert base64.b64decode(read["content"]) == hello
            await fail("s3.Read", {"pathname": "missing.txt"}, "uploads", "FILE_NOT_FOUND")
            assert not (await call("s3.Exists", {"pathname": "missing.txt"}, "uploads"))["exists"]
            await fail(
                "s3.Write",
                {"pathname": "../escape", "content": b64(b"x")},
                "uploads",
                "INVALID_PATHNAME",
            )
            # An unknown bucket's name is the caller's, not a label value: bucket="".
            await fail(
                "s3.Read", {"bucket": "no-such-bucket", "pathname": "a.txt"}, "", "BUCKET_NOT_FOUND"
            )
            copy = {"source_pathname": "a.txt", "dest_bucket": "archive", "dest_pathname": "a.txt"}
            await call("s3.Copy", copy, "archive")
            move = {"source_pathname": "b.txt", "dest_pathname": "moved/b.txt"}
            await call("s3.Move", move, "uploads")
            await fail(
                "s3.Move",
                {"source_pathname": "gone.txt", "dest_pathname": "x.txt"},
                "uploads",
                "FILE_NOT_FOUND",
            )
            await call("s3.Delete", {"pathname": "moved/b.txt"}, "uploads")
            await call("s3.GetMetadata", {"pathname": "a.txt"}, "uploads")
            await call("s3.ListObjects", {"bucket": "archive"}, "archive")
            await call("s3.GetPublicURL", {"pathname": "a.txt", "expires_in": 60}, "uploads")
            await call("s3.ListBuckets", {}, "")
            await call("s3.ListBuckets", {}, "")
            await fail("s3.NoSuchMethod", {}, "", "METHOD_NOT_FOUND")
            await call("s3.Delete", {"pathname": "a.txt"}, "uploads")
            await call("s3.Delete", {"bucket": "archive", "pathname": "a.txt"}, "archive")

        exposition = await scrape(app.http_url("/metrics"))

    got = samples(exposition, ["rr_s3_operations_total", "rr_s3_errors_total"])
    assert got == {
        op("write", "uploads", "success"): 2,
        op("write", "uploads", "error"): 1,
        op("read", "uploads", "success"): 1,
        op("read", "uploads", "error"): 1,
        op("read", "", "error"): 1,
        op("exists", "uploads", "success"): 1,
        op("copy", "archive", "success"): 1,
        # A Move is a copy and a delete, as in the Go plugin; a failed one a failed copy.
        op("copy", "uploads", "success"): 1,
        op("copy", "uploads", "error"): 1,
        op("delete", "uploads", "success"): 3,
        op("delete", "archive", "success"): 1,
        op("get_metadata", "uploads", "success"): 1,
        op("list", "archive", "success"): 1,
        op("get_url", "uploads", "success"): 1,
        op("list_buckets", "", "success"): 2,
        op("unknown", "", "error"): 1,
        err("uploads", "FILE_NOT_FOUND"): 2,
        err("uploads", "INVALID_PATHNAME"): 1,
        err("", "BUCKET_NOT_FOUND"): 1,
        err("", "METHOD_NOT_FOUND"): 1,
    }

    # One latency observation per call, by method and bucket.
    counts = samples(exposition, ["trio_s3rpc_call_duration_seconds_count"])
    observed = {
        (dict(labels)["method"], dict(labels)["bucket"]): value
        for (_, labels), value in counts.items()
    }
    expected = {key: float(n) for key, n in calls.items()}
    expected[("", "")] = expected.pop(("s3.NoSuchMethod", ""))  # never a caller's method name
    assert observed == expected

    moved = samples(exposition, ["trio_s3rpc_bytes_written_total", "trio_s3rpc_bytes_read_total"])
    assert moved == {
        ("trio_s3rpc_bytes_written_total", frozenset({("bucket", "uploads")})): len(hello) + 100,
        ("trio_s3rpc_bytes_read_total", frozenset({("bucket", "uploads")})): len(hello),
    }
    # Storage requests by server, S3 operation and status; no pathname anywhere.
    requests = samples(exposition, ["trio_s3rpc_storage_requests_total"])
    assert (
        requests[
            (
                "trio_s3rpc_storage_requests_total",
                frozenset({("server", "main"), ("operation", "PutObject"), ("status", "200")}),
            )
        ]
        == 2
    )
    assert "missing.txt" not in exposition and "no-such-bucket" not in exposition
    assert "NoSuchMethod" not in exposition
    limits = samples(exposition, ["trio_s3rpc_bucket_max_concurrent_operations"])
    assert set(limits.values()) == {100.0} and len(limits) == 2


async def test_health_and_readiness_follow_seaweedfs_stopping_and_returning(
    tmp_path: Path,
) -> None:
    # Its own SeaweedFS (the session's must keep serving), behind a proxy so
    # the address stays the same when it comes back on new ports.
    seaweed = EmbeddedSeaweedFS(tmp_path / "weed", buckets=["ready-bucket"])
    endpoint = await trio.to_thread.run_sync(seaweed.start)
    try:
        host, port = endpoint.endpoint.removeprefix("http://").split(":")
        proxy = TCPProxy(host, int(port))
        async with trio.open_nursery() as nursery:
            proxy_port = await proxy.start(nursery)
            server = endpoint_server(endpoint) | {"endpoint": f"http://127.0.0.1:{proxy_port}"}
            status = {"address": "127.0.0.1:0", "probe_interval": "100ms", "probe_timeout": "2s"}
            config = config_dict(
                server, {"files": {"bucket": "ready-bucket"}}, s3={"status": status}
            )
            async with running_app(config) as (app, _), httpx.AsyncClient() as http:
                health, ready = app.http_url("/health"), app.http_url("/ready")

                async def wait_ready(want: int) -> dict[str, Any]:
                    with trio.fail_after(60):
                        while True:
                            answer = await http.get(ready)
                            assert (await http.get(health)).status_code == 200
                            if answer.status_code == want:
                                document: dict[str, Any] = answer.json()
                                return document
                            await trio.sleep(0.05)

                assert (await wait_ready(200))["buckets"][0]["ready"] is True
                await trio.to_thread.run_sync(seaweed.stop)
                down = await wait_ready(503)
                assert down["status"] == "not_ready"
                [entry] = down["buckets"]
                assert entry["bucket"] == "files" and entry["ready"] is False
                assert entry["error"]  # why, in words
                assert endpoint.secret_key not in json.dumps(down)
                assert endpoint.access_key not in json.dumps(down)

                back = await trio.to_thread.run_sync(seaweed.start)
                proxy.target_port = int(back.endpoint.rsplit(":", 1)[1])
                assert (await wait_ready(200))["status"] == "ready"

                # A graceful stop turns /ready 503 at once; /health still answers.
                app.request_shutdown()
                answer = await http.get(ready)
                assert answer.status_code == 503 and answer.json()["status"] == "stopping"
            nursery.cancel_scope.cancel()
    finally:
        await trio.to_thread.run_sync(seaweed.stop)


async def test_a_scrape_during_a_1_gib_write_file_answers_at_once(
    seaweedfs: S3Endpoint, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as file:
        file.truncate(1024**3)  # sparse: the disk holds none of it
    config = config_dict(
        endpoint_server(seaweedfs),
        {"uploads": {"bucket": "test-bucket", "prefix": "obs-big/", "visibility_mode": "none"}},
        s3={**OBSERVED, "local_roots": [str(tmp_path)]},
    )
    async with running_app(config) as (app, address):
        url = app.http_url("/metrics")
        scrapes: list[str] = []
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
            done = trio.Event()

            async def write() -> None:
                async with await RPCClient.connect(address) as rpc:
                    await rpc.call(
                        "s3.WriteFile", {"pathname": "big.bin", "source_path": str(source)}
                    )
                done.set()

            nursery.start_soon(write)
            # Scrape while the parts are in flight: every scrape is answered well before the
            # upload ends (the event loop is free), and each sees the upload still open.
            with trio.fail_after(120):
                while len(scrapes) < 5 and not done.is_set():
                    answer = await http.get(url)
                    assert answer.status_code == 200
                    if not done.is_set():
                        scrapes.append(answer.text)
                    await trio.sleep(0.2)
            assert len(scrapes) == 5, "the upload ended before five scrapes were answered"
            assert not done.is_set()
        open_now = [samples(text, ["trio_s3rpc_multipart_uploads_open"]) for text in scrapes]
        assert all(
            found == {("trio_s3rpc_multipart_uploads_open", frozenset()): 1.0}
            for found in open_now[1:]
        )
        async with await RPCClient.connect(address) as rpc:
            await rpc.call("s3.Delete", {"pathname": "big.bin"})
        final = samples(await scrape(url), ["trio_s3rpc_bytes_written_total"])
        written = ("trio_s3rpc_bytes_written_total", frozenset({("bucket", "uploads")}))
        assert final == {written: 1024.0**3}


async def test_nothing_of_a_secret_in_metrics_or_ready(seaweedfs: S3Endpoint) -> None:
    config = config_dict(
        endpoint_server(seaweedfs),
        {"uploads": {"bucket": "test-bucket", "prefix": "obs-secret/", "visibility_mode": "none"}},
        s3=OBSERVED,
    )
    async with running_app(config) as (app, address):
        async with await RPCClient.connect(address) as rpc:
            await rpc.call("s3.Write", {"pathname": "s.txt", "content": b64(b"s")})
            await expect_error(rpc, "s3.Read", {"pathname": "nope.txt"}, "FILE_NOT_FOUND")
            await rpc.call("s3.GetPublicURL", {"pathname": "s.txt", "expires_in": 60})
            await rpc.call("s3.Delete", {"pathname": "s.txt"})
        async with httpx.AsyncClient() as http:
            bodies = [(await http.get(app.http_url(path))).text for path in ("/metrics", "/ready")]
    for body in bodies:
        assert seaweedfs.secret_key not in body
        assert seaweedfs.access_key not in body
        assert "X-Amz-Signature" not in body


async def test_checksum_mismatches_are_counted_per_bucket(
    seaweedfs: S3Endpoint, tmp_path: Path
) -> None:
    config = config_dict(
        endpoint_server(seaweedfs),
        {"uploads": {"bucket": "test-bucket", "prefix": "obs-sum/", "visibility_mode": "none"}},
        s3={**OBSERVED, "local_roots": [str(tmp_path)]},
    )
    async with running_app(config) as (app, address):
        async with await RPCClient.connect(address) as rpc:
            await rpc.call("s3.Write", {"pathname": "r.txt", "content": b64(b"written")})
            corrupt(seaweedfs, "test-bucket", "obs-sum/r.txt", b"changed")
            await expect_error(rpc, "s3.Read", {"pathname": "r.txt"}, "S3_OPERATION_FAILED")
            target = str(tmp_path / "r.txt")
            await expect_error(
                rpc,
                "s3.ReadFile",
                {"pathname": "r.txt", "destination_path": target},
                "S3_OPERATION_FAILED",
            )
            await rpc.call("s3.Delete", {"pathname": "r.txt"})
        exposition = await scrape(app.http_url("/metrics"))
    got = samples(exposition, ["trio_s3rpc_checksum_mismatches_total", "rr_s3_errors_total"])
    assert got == {
        ("trio_s3rpc_checksum_mismatches_total", frozenset({("bucket", "uploads")})): 2,
        err("uploads", "S3_OPERATION_FAILED"): 2,
    }
