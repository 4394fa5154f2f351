"""What one HTTP/1.1 connection costs: ours (h11 on the socket) against httpcore's.

The same S3Transport (SigV4-signed requests, our pool) GETs one 4 KiB object
from an embedded SeaweedFS with 16 trio tasks, once over
:class:`~trio_s3rpc.s3.http11.HTTP11Connection` and once over
``httpcore.AsyncHTTPConnection`` behind a thin adapter, in turns, several
rounds. The figure is this process's CPU per request (SeaweedFS runs in its
own process and is not counted), which other load on the machine moves far
less than requests per second.

    python -m benchmarks.http_connection [--seconds 3] [--tasks 16] [--rounds 3] [--size 4096]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import AsyncIterable, Mapping
from pathlib import Path

import httpcore
import trio

from trio_s3rpc.config import Credentials, ServerConfig
from trio_s3rpc.embedded import EmbeddedSeaweedFS
from trio_s3rpc.s3.http11 import Origin
from trio_s3rpc.s3.pool import ConnectionPool
from trio_s3rpc.s3.transport import S3Transport

BUCKET = "bench"
KEY = "http-connection/object"


class LibraryConnection:
    """httpcore's ``AsyncHTTPConnection`` with the interface our pool uses."""

    def __init__(self, origin: Origin, **options: object) -> None:
        self.origin = origin
        self._connection = httpcore.AsyncHTTPConnection(
            origin=httpcore.Origin(*origin),
            keepalive_expiry=options.get("keepalive_expiry"),  # type: ignore[arg-type]
        )

    def is_available(self) -> bool:
        return self._connection.is_available()

    def has_expired(self) -> bool:
        return self._connection.has_expired()

    def is_idle(self) -> bool:
        return self._connection.is_idle()

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes],
        timeouts: Mapping[str, float | None],
    ) -> httpcore.Response:
        scheme, host, port = self.origin
        return await self._connection.handle_async_request(
            httpcore.Request(
                method,
                httpcore.URL(scheme=scheme, host=host, port=port, target=target),
                headers=headers,
                content=body,
                extensions={"timeout": dict(timeouts)},
            )
        )

    async def aclose(self) -> None:
        await self._connection.aclose()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def cpu_per_request(
    transport: S3Transport, seconds: float, tasks: int
) -> tuple[float, float]:
    """(µs of CPU per GET, GETs per second) over ``seconds`` after a short warm-up."""
    done = 0

    async def worker(stop: float) -> None:
        nonlocal done
        while time.monotonic() < stop:
            response = await transport.request("GetObject", "GET", BUCKET, KEY)
            if not response.content:
                raise RuntimeError("an empty answer")
            done += 1

    for measured in (False, True):
        done = 0
        started, cpu = time.monotonic(), _cpu()
        stop = started + (seconds if measured else min(1.0, seconds))
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(worker, stop)
    elapsed = time.monotonic() - started
    return 1e6 * (_cpu() - cpu) / done, done / elapsed


async def run(endpoint: object, args: argparse.Namespace) -> None:
    server = ServerConfig(
        "bench",
        endpoint.region,  # type: ignore[attr-defined]
        endpoint.endpoint,  # type: ignore[attr-defined]
        credentials=Credentials(endpoint.access_key, endpoint.secret_key),  # type: ignore[attr-defined]
    )
    ours = S3Transport(server)
    await ours.request("PutObject", "PUT", BUCKET, KEY, body=os.urandom(args.size))
    figures: dict[str, list[tuple[float, float]]] = {"ours": [], "httpcore": []}
    original = ConnectionPool.connection_class
    try:
        for _ in range(args.rounds):
            for name in figures:
                ConnectionPool.connection_class = (
                    original if name == "ours" else LibraryConnection  # type: ignore[assignment]
                )
                transport = S3Transport(server)
                try:
                    figures[name].append(await cpu_per_request(transport, args.seconds, args.tasks))
                finally:
                    await transport.aclose()
    finally:
        ConnectionPool.connection_class = original
        await ours.aclose()
    print(f"GET {args.size} B x{args.tasks} tasks, {args.rounds} rounds of {args.seconds:g} s:")
    medians = {}
    for name, rounds in figures.items():
        cpu = statistics.median(figure[0] for figure in rounds)
        rate = statistics.median(figure[1] for figure in rounds)
        medians[name] = cpu
        print(f"  {name:9s} {cpu:7.1f} us CPU per request   {rate:7.0f} requests/s")
    print(f"  ours / httpcore CPU per request: {medians['ours'] / medians['httpcore']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    with EmbeddedSeaweedFS(workdir / "seaweedfs", buckets=[BUCKET]) as endpoint:
        trio.run(run, endpoint, args)


if __name__ == "__main__":
    main()
