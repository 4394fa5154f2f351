"""This checkout's server against another checkout's, same run, same storage, in turns.

Issues 21 and 22 each promise that a change costs (almost) nothing: WriteFile
and ReadFile of a large file within 5% of before, the small RPC cells within
3%. A before/after comparison only holds if both run on the same machine at
the same moment, so this starts one SeaweedFS and two servers
(:class:`~benchmarks.server.ServerProcess`, one of them with ``tree=`` the peer
checkout) and, in every round, runs each cell through both, the order
reversed every other round:

- a large WriteFile then ReadFile through each server
  (:class:`~benchmarks.large.LargeTransfers`: the digest of what came back is
  checked, page cache written back before each transfer), after one
  unmeasured pair per server;
- the RPC cells of ``python -m benchmarks run`` (ListBuckets, Write and Read
  of 4 KiB and 64 KiB) through each, the peer as an ``--rpc-peer``
  (:class:`~benchmarks.runner.CellRunner`).

    python -m benchmarks.trees --peer-tree ../before [--large-size 1GiB] [--rounds 3] \\
        [--duration 5] [--quick]

Figures per cell: the median over rounds for each tree, the ratio this / peer
(above 1: this tree is faster) and the server's CPU per operation (per
transfer for the large files). The 1-minute load average is recorded before
the run and after each round (it includes the run's own processes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.large import LargeTransfers, SourceFile, make_source_file
from benchmarks.peers import RPCPeer, peer_clients
from benchmarks.report import machine_info, table
from benchmarks.results import CellResult, LargeResult
from benchmarks.runner import CellRunner, CellSettings, PlannedCell, plan
from benchmarks.server import BucketSettings, ServerProcess
from benchmarks.target import open_target
from benchmarks.units import MIB, format_size, parse_int_list, parse_size
from benchmarks.workers import WorkerPool

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO / "benchmarks" / "results"
PEER = "peer"
PEER_CLIENT = peer_clients(RPCPeer(PEER, ""), False)[0]
RPC_WORKLOADS = ("listbuckets", "write", "read")
# The issues' bounds on |ratio - 1|: 21 for the large files, 22 for the RPC cells.
LARGE_BOUND = 0.05
RPC_BOUND = 0.03


def log(message: str) -> None:
    print(message, flush=True)


@dataclass(slots=True, frozen=True)
class Comparison:
    """One cell's rounds for both trees, as medians and their ratio."""

    cell: str
    unit: str  # of the medians: "ops/s" or "MiB/s"
    this: float
    peer: float
    this_cpu: float | None  # server CPU per operation (us) or per transfer (s), median
    peer_cpu: float | None
    bound: float

    @property
    def ratio(self) -> float | None:
        """this / peer of the medians: above 1, this tree is faster."""
        return self.this / self.peer if self.peer else None

    @property
    def within(self) -> bool | None:
        ratio = self.ratio
        return None if ratio is None else abs(ratio - 1.0) < self.bound


def median_or_none(values: list[float | None]) -> float | None:
    """The median of the known values (None where none is known)."""
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def compare(
    cell: str,
    unit: str,
    this: list[float],
    peer: list[float],
    bound: float,
    this_cpu: list[float | None] | None = None,
    peer_cpu: list[float | None] | None = None,
) -> Comparison:
    """The medians over rounds of both trees' figures (an even count: the mean of the two
    middle ones) and of their CPU per operation."""
    return Comparison(
        cell=cell,
        unit=unit,
        this=statistics.median(this),
        peer=statistics.median(peer),
        this_cpu=median_or_none(this_cpu or []),
        peer_cpu=median_or_none(peer_cpu or []),
        bound=bound,
    )


def cell_cpu_us(cell: CellResult) -> float | None:
    """Server CPU per call in microseconds: cores used / calls per second."""
    if cell.server_cores is None or not cell.ops_per_second:
        return None
    return cell.server_cores / cell.ops_per_second * 1e6


def transfer_cpu_s(result: LargeResult) -> float | None:
    """Server CPU seconds of one transfer."""
    return None if result.server_cores is None else result.server_cores * result.seconds


def _commit(tree: Path) -> str:
    answer = subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.stdout.strip() or "?"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class TreesRun:
    """The rounds of one run and everything they measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.large: dict[tuple[str, str], list[LargeResult]] = {}
        self.cells: dict[tuple[str, str], list[CellResult]] = {}
        self.loads: list[tuple[str, float]] = [("before the run", os.getloadavg()[0])]
        self.error = ""

    def run(self, workdir: Path) -> None:
        args = self.args
        bucket = BucketSettings(part_size=args.part_size, concurrency=args.concurrency)
        settings = CellSettings(
            connections=args.connections,
            sizes=args.sizes,
            clients=["rpc", PEER_CLIENT],
            warmup=args.warmup,
            duration=args.duration,
            fixture_count=32,
        )
        cells = [cell for cell in plan(settings) if cell.workload in RPC_WORKLOADS]
        log("starting SeaweedFS")
        with open_target(workdir, None) as target:
            this = ServerProcess(target, bucket, workdir, name="this")
            peer = ServerProcess(target, bucket, workdir, name=PEER, tree=args.peer_tree)
            with this, peer:
                log(f"this tree: pid {this.pid} on {this.address}")
                log(f"peer {args.peer_tree}: pid {peer.pid} on {peer.address}")
                servers = {"this": this, PEER: peer}
                transfers = {
                    name: LargeTransfers(server, target, bucket, workdir, log)
                    for name, server in servers.items()
                }
                log(f"writing a {format_size(args.large_size)} source file")
                source = make_source_file(workdir / "large-source.bin", args.large_size)
                pool = WorkerPool(args.client_processes)
                try:
                    runner = CellRunner(
                        pool, this, target, settings, args.out, log,
                        {PEER: RPCPeer(PEER, peer.address)}, {PEER: peer.pid},
                    )  # fmt: skip
                    log("writing the Read fixtures (one set, both servers read it)")
                    runner.write_fixtures()
                    log("warm-up: one unmeasured WriteFile and ReadFile through each server")
                    for name in servers:
                        transfers[name].upload("rpc", source)
                        transfers[name].download("rpc", source)
                    for number in range(args.rounds):
                        order = list(servers) if number % 2 == 0 else list(servers)[::-1]
                        log(f"round {number + 1}/{args.rounds}: {' then '.join(order)}")
                        self._large_round(transfers, order, source)
                        self._rpc_round(runner, cells, order)
                        self.loads.append((f"after round {number + 1}", os.getloadavg()[0]))
                finally:
                    pool.close()
                    source.path.unlink(missing_ok=True)

    def _large_round(
        self, transfers: dict[str, LargeTransfers], order: list[str], source: SourceFile
    ) -> None:
        for operation in ("WriteFile", "ReadFile"):
            for name in order:
                moved = transfers[name]
                result = (
                    moved.upload("rpc", source)
                    if operation == "WriteFile"
                    else moved.download("rpc", source)
                )
                if not result.verified:
                    raise RuntimeError(f"{operation} through {name}: wrong size or digest")
                self.large.setdefault((operation, name), []).append(result)
                log(
                    f"  {operation:<9} {name:<5} {result.mib_per_second:7.1f} MiB/s  "
                    f"{result.seconds:6.2f} s  server CPU {transfer_cpu_s(result) or 0:.2f} s"
                )

    def _rpc_round(self, runner: CellRunner, cells: list[PlannedCell], order: list[str]) -> None:
        client_of = {"this": "rpc", PEER: PEER_CLIENT}
        rank = {client_of[name]: index for index, name in enumerate(order)}
        # plan() lists each cell's clients together: sort them into this round's order.
        ordered = [
            cell
            for _, cell in sorted(
                enumerate(cells), key=lambda item: (item[0] // 2, rank[item[1].client])
            )
        ]
        results: list[CellResult] = []
        runner.run(ordered, results, [], float("inf"))
        for result in results:
            if result.errors:
                raise RuntimeError(f"{result.label} {result.client}: {result.first_error}")
            name = "this" if result.client == "rpc" else PEER
            key = (f"{result.label} x{result.connections}", name)
            self.cells.setdefault(key, []).append(result)

    def comparisons(self) -> list[Comparison]:
        rows = []
        for operation in ("WriteFile", "ReadFile"):
            this = self.large.get((operation, "this"), [])
            peer = self.large.get((operation, PEER), [])
            if this and peer:
                rows.append(
                    compare(
                        f"{operation} {format_size(self.args.large_size)}",
                        "MiB/s",
                        [r.mib_per_second for r in this],
                        [r.mib_per_second for r in peer],
                        LARGE_BOUND,
                        [transfer_cpu_s(r) for r in this],
                        [transfer_cpu_s(r) for r in peer],
                    )
                )
        names = list(dict.fromkeys(cell for cell, _ in self.cells))
        for cell in names:
            this_cells = self.cells.get((cell, "this"), [])
            peer_cells = self.cells.get((cell, PEER), [])
            if this_cells and peer_cells:
                rows.append(
                    compare(
                        cell,
                        "ops/s",
                        [c.ops_per_second for c in this_cells],
                        [c.ops_per_second for c in peer_cells],
                        RPC_BOUND,
                        [cell_cpu_us(c) for c in this_cells],
                        [cell_cpu_us(c) for c in peer_cells],
                    )
                )
        return rows

    def render(self, command: list[str]) -> str:
        args = self.args
        rows = []
        for row in self.comparisons():
            cpu_unit = "s" if row.unit == "MiB/s" else "us"
            ratio = row.ratio
            verdict = {True: "yes", False: "NO", None: "-"}[row.within]
            rows.append(
                [
                    row.cell,
                    f"{row.this:,.1f} {row.unit}",
                    f"{row.peer:,.1f} {row.unit}",
                    "-" if ratio is None else f"{ratio:.3f}",
                    f"±{row.bound:.0%} {verdict}",
                    "-" if row.this_cpu is None else f"{row.this_cpu:,.1f} {cpu_unit}",
                    "-" if row.peer_cpu is None else f"{row.peer_cpu:,.1f} {cpu_unit}",
                ]
            )
        lines = [
            f"command: {' '.join(command)}",
            f"this tree: {REPO} at {_commit(REPO)}",
            f"peer tree: {args.peer_tree} at {_commit(args.peer_tree)}",
            f"{args.rounds} rounds, order reversed every other round; RPC cells "
            f"{args.warmup:g} s warm-up + {args.duration:g} s, {args.client_processes} client "
            f"processes; large files {format_size(args.large_size)}, part "
            f"{format_size(args.part_size)} x {args.concurrency}, after one unmeasured pair",
            "load average (1 min): " + ", ".join(f"{when} {load:.2f}" for when, load in self.loads),
            "",
            "Medians over rounds; ratio = this / peer (above 1: this tree faster); server CPU "
            "per call (us) or per transfer (s)",
            table(
                ["cell", "this", "peer", "ratio", "bound", "this CPU", "peer CPU"],
                rows,
            ),
        ]
        if self.error:
            lines += ["", f"INCOMPLETE: {self.error}"]
        return "\n".join(lines)

    def document(self, command: list[str]) -> dict[str, Any]:
        args = self.args
        return {
            "kind": "trees",
            "command": command,
            "this_tree": {"path": str(REPO), "commit": _commit(REPO)},
            "peer_tree": {"path": str(args.peer_tree), "commit": _commit(args.peer_tree)},
            "machine": machine_info(),
            "settings": {
                "rounds": args.rounds,
                "duration": args.duration,
                "warmup": args.warmup,
                "connections": args.connections,
                "sizes": args.sizes,
                "client_processes": args.client_processes,
                "large_size": args.large_size,
                "part_size": args.part_size,
                "concurrency": args.concurrency,
            },
            "load_average_1min": [{"when": when, "load": load} for when, load in self.loads],
            "comparisons": [
                {**dataclasses.asdict(row), "ratio": row.ratio, "within": row.within}
                for row in self.comparisons()
            ],
            "rounds": {
                "large": [
                    {"tree": name, **dataclasses.asdict(result)}
                    for (_, name), results in self.large.items()
                    for result in results
                ],
                "cells": [
                    {"tree": name, **dataclasses.asdict(result)}
                    for (_, name), results in self.cells.items()
                    for result in results
                ],
            },
            "error": self.error,
        }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.trees", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--peer-tree", type=Path, required=True, help="the other checkout")
    parser.add_argument("--quick", action="store_true", help="128 MiB, 1 round, 1 s cells")
    parser.add_argument("--large-size", type=parse_size, help="WriteFile/ReadFile size (1GiB)")
    parser.add_argument("--rounds", type=int, help="rounds, trees in turns (3; quick 1)")
    parser.add_argument("--duration", type=float, help="measured seconds per RPC cell (5)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per RPC cell (1)")
    parser.add_argument("--connections", type=parse_int_list, default=[16])
    parser.add_argument("--sizes", default="4KiB,64KiB", help="Write/Read object sizes")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--part-size", type=parse_size, default=5 * MIB)
    parser.add_argument("--concurrency", type=int, default=5, help="parts in flight")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.peer_tree = args.peer_tree.resolve()
    if not (args.peer_tree / "trio_s3rpc").is_dir():
        print(f"error: {args.peer_tree} holds no trio_s3rpc package", file=sys.stderr)
        return 2
    args.large_size = args.large_size or (128 * MIB if args.quick else 1024 * MIB)
    args.rounds = max(1, args.rounds or (1 if args.quick else 3))
    args.duration = args.duration or (1.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    args.sizes = [parse_size(size) for size in args.sizes.split(",") if size]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    command = ["python", "-m", "benchmarks.trees", *sys.argv[1:]]
    run = TreesRun(args)
    status = 0
    workdir = Path(tempfile.mkdtemp(prefix="trio-s3rpc-trees-"))
    try:
        run.run(workdir)
    except KeyboardInterrupt:
        run.error, status = "interrupted", 130
    except Exception as exc:
        run.error, status = f"{type(exc).__name__}: {exc}", 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"trees-{time.strftime('%Y%m%d-%H%M%S')}"
    text = run.render(command)
    base.with_suffix(".txt").write_text(text + "\n")
    base.with_suffix(".json").write_text(json.dumps(run.document(command), indent=2) + "\n")
    log("\n" + text)
    log(f"results: {base.with_suffix('.txt')}, {base.with_suffix('.json')}")
    return status


if __name__ == "__main__":
    sys.exit(main())
