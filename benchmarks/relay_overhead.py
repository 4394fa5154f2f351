"""What the relay costs: relayed calls against direct ones, s3.* with and without a relay.

One process, one trio loop: the echo upstream (tests/support/upstream.py, the
project's own RPC server), the application and the clients share it, so the
figures are ratios within one run, not absolute server throughput. The
steadier figure on a shared machine is CPU time per call (the process's own
CPU, clients and upstream included), which other processes' load barely moves.

    python -m benchmarks.relay_overhead [--seconds 3] [--clients 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Mapping
from typing import Any

import trio

from tests.support.server import config_dict, running_app
from tests.support.upstream import running_upstream
from trio_s3rpc.client import RPCPool


async def cpu_per_call(address: str, method: str, args: Any, clients: int, seconds: float) -> float:
    """Microseconds of this process's CPU per completed call."""
    done = 0
    async with await RPCPool.connect(address, clients) as pool:

        async def worker() -> None:
            nonlocal done
            while True:
                await pool.call(method, args)
                done += 1

        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(worker)
            await trio.sleep(0.3)  # warm up
            start_count, start = done, time.process_time()
            await trio.sleep(seconds)
            per_call = (time.process_time() - start) / max(1, done - start_count) * 1e6
            nursery.cancel_scope.cancel()
    return per_call


async def one_round(clients: int, seconds: float) -> Mapping[str, float]:
    args = {"pathname": "a.txt", "n": 1}
    rates: dict[str, float] = {}
    async with running_upstream() as upstream:
        quiet = {"abort_stale_after": 0}  # no storage here: no reaper
        relayed = config_dict(s3={"relay": upstream.address, **quiet})
        async with (
            running_app(config_dict(s3=quiet)) as (_, plain),
            running_app(relayed) as (_, beside),
        ):
            rates["s3.ListBuckets, no relay"] = await cpu_per_call(
                plain, "s3.ListBuckets", None, clients, seconds
            )
            rates["s3.ListBuckets, relay set"] = await cpu_per_call(
                beside, "s3.ListBuckets", None, clients, seconds
            )
            rates["echo.Echo, direct to upstream"] = await cpu_per_call(
                upstream.address, "echo.Echo", args, clients, seconds
            )
            rates["echo.Echo, through the relay"] = await cpu_per_call(
                beside, "echo.Echo", args, clients, seconds
            )
    return rates


async def main(clients: int, seconds: float, rounds: int) -> None:
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, rate in (await one_round(clients, seconds)).items():
            results.setdefault(name, []).append(rate)
    median = {name: statistics.median(rates) for name, rates in results.items()}
    for name, rates in results.items():
        shown = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(f"{name:32} median {median[name]:>6,.0f} us CPU per call  (rounds: {shown})")
    print(
        "CPU per call, s3.ListBuckets relay set / no relay: "
        f"{median['s3.ListBuckets, relay set'] / median['s3.ListBuckets, no relay']:.2f}"
    )
    print(
        "CPU per call, echo.Echo through the relay / direct: "
        f"{median['echo.Echo, through the relay'] / median['echo.Echo, direct to upstream']:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    trio.run(main, options.clients, options.seconds, options.rounds)
