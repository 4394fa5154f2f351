"""A copy between two storage services: ``s3.Copy`` against boto3 download-then-upload.

``python -m benchmarks.crossserver`` starts two private SeaweedFS services (two
``weed mini`` processes, two S3 endpoints with their own credentials), puts a
source object on the first, and starts the server as users run it, a separate
process with one ``servers`` entry per service. Then, in the same run and
taking turns, it times:

- ``rpc``: one ``s3.Copy`` from a bucket on the first service to one on the
  second, which the server streams (ranged GETs into a multipart upload) with
  no local disk, while the server's peak RSS growth is watched;
- ``boto3``: what an application does without it, ``download_file`` from the
  first service into a local file, then ``upload_file`` to the second (the
  file is deleted afterwards; its write and read are part of the cost).

Both use the same part size and concurrency. A copy counts only if the object
that arrived has the source's MD5. The figures go to stdout and, as JSON,
to ``benchmarks/results/crossserver-<time>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.config
import trio
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

from benchmarks.procstat import PeakMemory
from benchmarks.server import BucketSettings, ServerProcess
from benchmarks.target import S3Target
from benchmarks.units import MIB, format_size, parse_size
from trio_s3rpc.client import RPCClient
from trio_s3rpc.embedded import EmbeddedSeaweedFS, S3Endpoint

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
SOURCE_BUCKET = "xs-source"
DEST_BUCKET = "xs-dest"
SOURCE_KEY = "source.bin"
BLOCK = 8 * MIB
TIMEOUT = 1800.0


@dataclass(slots=True)
class CopyResult:
    client: str  # "rpc" or "boto3"
    size: int
    seconds: float
    mib_per_second: float
    # Peak over the rounds: the server's for rpc, the harness's (where boto3 runs) for boto3.
    rss_growth_mib: float
    verified: bool
    rounds: list[float]


def log(message: str) -> None:
    print(message, flush=True)


def boto3_client(endpoint: S3Endpoint, connections: int) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint.endpoint,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        config=botocore.config.Config(
            s3={"addressing_style": "path"}, max_pool_connections=max(10, connections)
        ),
    )


def server_document(
    source: S3Endpoint, dest: S3Endpoint, part_size: int, concurrency: int, root: Path
) -> dict[str, Any]:
    def server(endpoint: S3Endpoint) -> dict[str, Any]:
        return {
            "region": endpoint.region,
            "endpoint": endpoint.endpoint,
            "credentials": {"key": endpoint.access_key, "secret": endpoint.secret_key},
        }

    def bucket(server_name: str, name: str) -> dict[str, Any]:
        return {
            "server": server_name,
            "bucket": name,
            "visibility_mode": "none",
            "part_size": part_size,
            "concurrency": concurrency,
        }

    return {
        "rpc": {"listen": "tcp://127.0.0.1:0"},
        "s3": {
            "default": "source",
            "shutdown_timeout": "5s",
            "local_roots": [str(root)],
            "servers": {"first": server(source), "second": server(dest)},
            "buckets": {
                "source": bucket("first", SOURCE_BUCKET),
                "dest": bucket("second", DEST_BUCKET),
            },
        },
    }


def copy_server(
    source: S3Endpoint, dest: S3Endpoint, part_size: int, concurrency: int, workdir: Path
) -> ServerProcess:
    """The server process, its ``s3`` section replaced by one with two servers."""
    target = S3Target(
        kind="seaweedfs",
        endpoint=source.endpoint,
        region=source.region,
        bucket=SOURCE_BUCKET,
        path_style=True,
        prefix="",
        visibility_mode="none",
        access_key=source.access_key,
        secret_key=source.secret_key,
    )
    document = server_document(source, dest, part_size, concurrency, workdir)
    return ServerProcess(
        target,
        BucketSettings(part_size, concurrency),
        workdir,
        name="crossserver",
        s3_extra={
            key: document["s3"][key] for key in ("default", "servers", "buckets", "local_roots")
        },
    )


def object_md5(client: Any, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.md5(usedforsecurity=False)
    while block := body.read(BLOCK):
        digest.update(block)
    return digest.hexdigest()


def put_source(client: Any, size: int, config: TransferConfig) -> str:
    """Upload ``size`` random bytes as the source, from a pipe of blocks (no file); their MD5."""
    digest = hashlib.md5(usedforsecurity=False)

    class Random:
        def __init__(self) -> None:
            self.left = size

        def read(self, amount: int = -1) -> bytes:
            amount = self.left if amount < 0 else min(amount, self.left)
            block = os.urandom(amount)
            self.left -= amount
            digest.update(block)
            return block

    client.upload_fileobj(Random(), SOURCE_BUCKET, SOURCE_KEY, Config=config)
    return digest.hexdigest()


def rpc_copy(address: str, dest_pathname: str) -> dict[str, Any]:
    async def call() -> dict[str, Any]:
        with trio.fail_after(TIMEOUT):
            async with await RPCClient.connect(address) as rpc:
                answer = await rpc.call(
                    "s3.Copy",
                    {
                        "source_bucket": "source",
                        "source_pathname": SOURCE_KEY,
                        "dest_bucket": "dest",
                        "dest_pathname": dest_pathname,
                    },
                )
                return dict(answer)

    return trio.run(call)


def measure(pid: int, transfer: Callable[[], None]) -> tuple[float, float]:
    with PeakMemory(pid) as memory:
        started = time.perf_counter()
        transfer()
        seconds = time.perf_counter() - started
    return seconds, memory.growth / MIB


def run(size: int, part_size: int, concurrency: int, repeat: int, out: Path) -> list[CopyResult]:
    config = TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=concurrency,
        use_threads=True,
    )
    with tempfile.TemporaryDirectory(prefix="trio-s3rpc-xs-") as scratch:
        work = Path(scratch)
        first = EmbeddedSeaweedFS(work / "first", buckets=[SOURCE_BUCKET])
        second = EmbeddedSeaweedFS(work / "second", buckets=[DEST_BUCKET])
        try:
            source, dest = first.start(), second.start()
            source_s3 = boto3_client(source, concurrency)
            dest_s3 = boto3_client(dest, concurrency)
            log(f"putting a {format_size(size)} source object on the first service")
            digest = put_source(source_s3, size, config)
            server = copy_server(source, dest, part_size, concurrency, work)
            with server:
                results = _rounds(server, source_s3, dest_s3, size, config, digest, repeat, work)
        finally:
            second.stop()
            first.stop()
    _report(results, size, part_size, concurrency, out)
    return results


def _rounds(
    server: ServerProcess,
    source_s3: Any,
    dest_s3: Any,
    size: int,
    config: TransferConfig,
    digest: str,
    repeat: int,
    work: Path,
) -> list[CopyResult]:
    best: dict[str, CopyResult] = {}
    for round_number in range(repeat):
        for client in ("rpc", "boto3"):
            key = f"{client}-{round_number}.bin"
            if client == "rpc":

                def transfer(key: str = key) -> None:
                    answer = rpc_copy(server.address, key)
                    if answer.get("size") != size:
                        raise RuntimeError(f"s3.Copy answered {answer}")

                pid = server.pid
            else:
                local = work / "boto3-download.bin"

                def transfer(key: str = key, local: Path = local) -> None:
                    source_s3.download_file(SOURCE_BUCKET, SOURCE_KEY, str(local), Config=config)
                    dest_s3.upload_file(str(local), DEST_BUCKET, key, Config=config)
                    local.unlink()

                pid = os.getpid()
            seconds, growth = measure(pid, transfer)
            verified = object_md5(dest_s3, DEST_BUCKET, key) == digest
            dest_s3.delete_object(Bucket=DEST_BUCKET, Key=key)
            speed = size / MIB / seconds
            log(
                f"  round {round_number + 1} {client:5}: {seconds:6.2f} s  {speed:7.1f} MiB/s  "
                f"RSS +{growth:.0f} MiB  {'verified' if verified else 'NOT VERIFIED'}"
            )
            previous = best.get(client)
            rounds = [*(previous.rounds if previous else []), round(speed, 1)]
            all_verified = verified and (previous is None or previous.verified)
            peak = max(growth, previous.rss_growth_mib if previous else 0.0)
            if previous is None or seconds < previous.seconds:
                best[client] = CopyResult(client, size, seconds, speed, growth, verified, rounds)
            # The time of the best round, the memory of the worst.
            best[client].rounds = rounds
            best[client].verified = all_verified
            best[client].rss_growth_mib = peak
    return [best["rpc"], best["boto3"]]


def _report(
    results: list[CopyResult], size: int, part_size: int, concurrency: int, out: Path
) -> None:
    ours, theirs = results
    ratio = ours.mib_per_second / theirs.mib_per_second
    bound = part_size * (concurrency + 2) / MIB + 32
    lines = [
        f"cross-server copy of {format_size(size)}, {format_size(part_size)} parts, "
        f"{concurrency} in flight (best of {len(ours.rounds)} rounds)",
        f"  s3.Copy (streamed, no disk)          {ours.mib_per_second:7.1f} MiB/s  "
        f"server RSS +{ours.rss_growth_mib:.0f} MiB (bound {bound:.0f} MiB)",
        f"  boto3 download_file + upload_file    {theirs.mib_per_second:7.1f} MiB/s  "
        f"client RSS +{theirs.rss_growth_mib:.0f} MiB",
        f"  ratio (ours / boto3): {ratio:.2f}x"
        + ("" if ours.verified and theirs.verified else "  (A COPY DID NOT VERIFY)"),
    ]
    log("\n".join(lines))
    out.mkdir(parents=True, exist_ok=True)
    path = out / time.strftime("crossserver-%Y%m%d-%H%M%S.json")
    document = {
        "size": size,
        "part_size": part_size,
        "concurrency": concurrency,
        "ratio": round(ratio, 3),
        "results": [asdict(result) for result in results],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": sys.version.split()[0],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    log(f"written: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.crossserver",
        description="s3.Copy between two services against boto3 download_file + upload_file.",
    )
    parser.add_argument("--size", type=parse_size, default=1024 * MIB, help="object size (1GiB)")
    parser.add_argument("--part-size", type=parse_size, default=16 * MIB)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2, help="rounds, the clients taking turns")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    run(args.size, args.part_size, args.concurrency, args.repeat, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
