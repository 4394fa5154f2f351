"""The ``python -m benchmarks`` command: ``run``, ``memory`` and ``checksums``.

``run`` is the whole comparison of issue 6; ``memory`` is issue 5's bounded
memory check on one large file; ``checksums`` times the hash functions;
``metrics`` is what metrics cost (issue 16): the same cells against a server
with metrics off and one with metrics on (scraped every second), in turns;
``workers`` is what ``s3.workers`` buys (issue 12): the same cells against a
server of ``--workers`` (1) processes and one of ``--peer-workers`` (2), in turns.
Everything the harness starts (SeaweedFS, the server, client processes,
py-spy) is stopped on the way out, also after Ctrl-C or an error, and the
results gathered so far are still written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from benchmarks import checksums, metrics_cost
from benchmarks.large import LargeTransfers
from benchmarks.peers import (
    GO_PLUGIN_NAME,
    GoPluginProcess,
    RPCPeer,
    parse_peer,
    peer_clients,
    peer_codec,
    probe,
    write_fixtures,
)
from benchmarks.report import RunReport, machine_info, render, versions, write_chart, write_json
from benchmarks.results import CellResult
from benchmarks.runner import (
    CellRunner,
    CellSettings,
    PlannedCell,
    estimate_seconds,
    normalise_cell_name,
    plan,
)
from benchmarks.server import BucketSettings, ServerProcess
from benchmarks.target import BACKENDS, ExternalService, S3Target, open_target
from benchmarks.units import MIB, format_size, parse_int_list, parse_size
from benchmarks.workers import WorkerPool
from trio_s3rpc.config import default_workers
from trio_s3rpc.embedded import find_weed_binary

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_GO_PLUGIN = Path(os.environ.get("GO_PLUGIN_HOME", "/tmp/go-plugin")) / "bin/s3-rpc-server"
DEFAULT_CLIENTS = ["rpc", "transport", "httpx", "boto3"]
ALL_CLIENTS = [*DEFAULT_CLIENTS, "rpc-msgpack"]
LARGE_PROFILES = ("writefile", "readfile")


def log(message: str) -> None:
    print(message, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmarks of trio-s3rpc against its peers."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="every workload, every peer (issue 6)")
    _add_target_options(run)
    run.add_argument("--quick", action="store_true", help="short cells, 128 MiB large files")
    run.add_argument("--connections", type=parse_int_list, default=[1, 16, 64])
    run.add_argument("--sizes", default="4KiB,64KiB", help="object sizes for Write/Read")
    run.add_argument(
        "--clients",
        default=",".join(DEFAULT_CLIENTS),
        help=f"rpc and the peers to run, from {','.join(ALL_CLIENTS)}",
    )
    run.add_argument("--duration", type=float, help="measured seconds per cell (5; quick 1)")
    run.add_argument("--warmup", type=float, help="unmeasured seconds per cell (1; quick 0.3)")
    run.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds per cell, clients taking turns; the median round is reported (use 3 on "
        "a machine that other work shares)",
    )
    run.add_argument("--client-processes", type=int, default=2)
    run.add_argument("--fixtures", type=int, default=32, help="objects per size for Read/Exists")
    run.add_argument("--large-size", type=parse_size, help="WriteFile/ReadFile size (1GiB)")
    run.add_argument("--no-large", action="store_true", help="skip the large-file cells")
    run.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="CELL",
        help="py-spy the server in an extra run of an rpc cell: read:4KiB@16, listbuckets@16, "
        "writefile, readfile (repeatable)",
    )
    run.add_argument("--time-limit", type=float, default=900.0, help="seconds; cells past it skip")
    run.add_argument(
        "--rpc-peer",
        action="append",
        default=[],
        metavar="NAME=ADDRESS",
        help="another Goridge s3.* server with a bucket named 'bench' (e.g. "
        "go=tcp://127.0.0.1:6101): its RPC cells run in the same rounds as ours (repeatable)",
    )
    run.add_argument(
        "--go-plugin",
        nargs="?",
        const=str(DEFAULT_GO_PLUGIN),
        metavar="BINARY",
        help="start the Go plugin's s3-rpc-server against this run's storage as the peer 'go' "
        f"(default binary {DEFAULT_GO_PLUGIN})",
    )

    memory = commands.add_parser("memory", help="issue 5: large WriteFile/ReadFile memory bound")
    _add_target_options(memory)
    memory.add_argument("--size", type=parse_size, default=2 * 1024 * MIB)
    memory.add_argument("--with-boto3", action="store_true", help="also run boto3 for comparison")

    cost = commands.add_parser(
        "metrics", help="issue 16: 4 KiB Read and ListBuckets with metrics off and on"
    )
    _add_target_options(cost)
    cost.add_argument("--connections", type=parse_int_list, default=[16])
    cost.add_argument("--duration", type=float, default=5.0)
    cost.add_argument("--warmup", type=float, default=1.0)
    cost.add_argument("--repeat", type=int, default=3, help="rounds per cell, in turns")
    cost.add_argument("--client-processes", type=int, default=2)
    cost.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes")

    spread = commands.add_parser(
        "workers", help="issue 12: 4 KiB Read and ListBuckets with s3.workers 1 and N"
    )
    _add_target_options(spread)
    spread.add_argument(
        "--peer-workers", type=int, default=2, help="the second server's workers (2)"
    )
    spread.add_argument("--connections", type=parse_int_list, default=[16])
    spread.add_argument("--duration", type=float, default=5.0)
    spread.add_argument("--warmup", type=float, default=1.0)
    spread.add_argument("--repeat", type=int, default=3, help="rounds per cell, in turns")
    spread.add_argument("--client-processes", type=int, default=2)

    sums = commands.add_parser("checksums", help="MB/s of crc32, crc32c, sha256, md5, base64")
    sums.add_argument("--seconds", type=float, default=1.5, help="per function")
    sums.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    return parser


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("storage (default: an embedded SeaweedFS)")
    group.add_argument(
        "--backend",
        default="seaweedfs",
        choices=BACKENDS,
        help="the store started for the run: SeaweedFS (weed mini) or Ceph RGW "
        "(mon, memstore OSD, radosgw; .ci/install-rgw installs it)",
    )
    group.add_argument("--endpoint", help="S3 endpoint URL, e.g. http://127.0.0.1:9000")
    group.add_argument("--key", default=os.environ.get("BENCH_S3_KEY"), help="or BENCH_S3_KEY")
    group.add_argument(
        "--secret", default=os.environ.get("BENCH_S3_SECRET"), help="or BENCH_S3_SECRET"
    )
    group.add_argument("--bucket", default="trio-s3rpc-bench", help="created if missing")
    group.add_argument("--region", default="us-east-1")
    group.add_argument(
        "--virtual-host", action="store_true", help="virtual-hosted URLs (default: path style)"
    )
    group.add_argument(
        "--visibility-mode",
        default="none",
        choices=["none", "acl"],
        help="the server bucket's visibility_mode (none: no ACL headers)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="server processes (serve --workers N; 1: one process, no supervisor); "
        f"default: the server's own default here ({default_workers()})",
    )
    parser.add_argument("--part-size", type=parse_size, default=5 * MIB)
    parser.add_argument("--concurrency", type=int, default=5, help="parts in flight per transfer")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results directory")
    parser.add_argument("--workdir", help="where temporary files go (default: system temp)")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Ctrl-C and SIGTERM both stop the run the same way, with everything it
    # started; also when launched with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    if args.command == "checksums":
        return command_checksums(args)
    try:
        external = _external(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        return command_run(args, external)
    if args.command == "metrics":
        return command_metrics(args, external)
    if args.command == "workers":
        return command_workers(args, external)
    return command_memory(args, external)


def _external(args: argparse.Namespace) -> ExternalService | None:
    if not args.endpoint:
        return None
    if args.backend != "seaweedfs":
        raise ValueError("--backend starts a store of its own; leave it out with --endpoint")
    if not args.key or not args.secret:
        raise ValueError("--endpoint needs --key and --secret (or BENCH_S3_KEY/BENCH_S3_SECRET)")
    return ExternalService(
        endpoint=args.endpoint,
        access_key=args.key,
        secret_key=args.secret,
        bucket=args.bucket,
        region=args.region,
        path_style=not args.virtual_host,
        visibility_mode=args.visibility_mode,
    )


def _weed() -> str | None:
    try:
        return find_weed_binary()
    except RuntimeError:
        return None


def _new_report(kind: str, args: argparse.Namespace, settings: dict[str, object]) -> RunReport:
    return RunReport(
        kind=kind,
        command=["python", "-m", "benchmarks", *sys.argv[1:]],
        started=time.strftime("%Y-%m-%d %H:%M:%S"),
        machine=machine_info(),
        versions=versions(
            _weed() if not args.endpoint and args.backend == "seaweedfs" else None,
            ceph=not args.endpoint and args.backend == "rgw",
        ),
        settings=settings,
    )


# -- run ------------------------------------------------------------------------------


def _peers(args: argparse.Namespace) -> list[RPCPeer]:
    """The ``--rpc-peer`` servers; ValueError for a bad or repeated name."""
    peers = [parse_peer(text) for text in args.rpc_peer]
    names = [peer.name for peer in peers] + ([GO_PLUGIN_NAME] if args.go_plugin else [])
    repeated = {name for name in names if names.count(name) > 1}
    if repeated:
        raise ValueError(f"peer name used twice: {', '.join(sorted(repeated))}")
    return peers


def command_run(args: argparse.Namespace, external: ExternalService | None) -> int:
    clients = [client for client in args.clients.split(",") if client]
    unknown = set(clients) - set(ALL_CLIENTS)
    if unknown or "rpc" not in clients:
        print(f"error: --clients must include rpc and name only {ALL_CLIENTS}", file=sys.stderr)
        return 2
    try:
        peers = _peers(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    peer_names = [*peers, *([RPCPeer(GO_PLUGIN_NAME, "(started)")] if args.go_plugin else [])]
    # The peers' cells come right after ours in each group, so they take turns with ours.
    peer_cells = [c for p in peer_names for c in peer_clients(p, "rpc-msgpack" in clients)]
    ordered = ["rpc", *peer_cells, *(client for client in clients if client != "rpc")]
    cell_settings = CellSettings(
        connections=args.connections,
        sizes=[parse_size(size) for size in args.sizes.split(",") if size],
        clients=ordered,
        warmup=args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0),
        duration=args.duration if args.duration is not None else (1.0 if args.quick else 5.0),
        fixture_count=args.fixtures,
        repeat=max(1, args.repeat),
        profile=args.profile,
        client_processes=args.client_processes,
    )
    large_size = args.large_size or (128 * MIB if args.quick else 1024 * MIB)
    large_profiles = frozenset(
        name for name in map(normalise_cell_name, args.profile) if name in LARGE_PROFILES
    )
    bucket = BucketSettings(part_size=args.part_size, concurrency=args.concurrency)
    cells = plan(cell_settings)
    peer_addresses = {peer.name: peer.address for peer in peers}
    settings = {
        **dataclasses.asdict(cell_settings),
        "quick": args.quick,
        "client_processes": args.client_processes,
        "large_size": None if args.no_large else large_size,
        "part_size": bucket.part_size,
        "concurrency": bucket.concurrency,
        "max_concurrent_operations": bucket.max_concurrent_operations,
        "codec": "json (base64 content, as PHP's default)"
        + ("; msgpack for rpc-msgpack" if "rpc-msgpack" in clients else ""),
        "rpc_peers": peer_addresses,
        "go_plugin": args.go_plugin,
        "server_workers": args.workers,
        "time_limit": args.time_limit,
    }
    report = _new_report("run", args, settings)
    estimate = estimate_seconds(cells, cell_settings)
    log(
        f"{len(cells)} cells, about {estimate / 60:.1f} min"
        f"{'' if args.no_large else f' plus the {format_size(large_size)} transfers'}"
        f" (time limit {args.time_limit:.0f} s)"
    )
    deadline = time.monotonic() + args.time_limit

    def body(target: S3Target, server: ServerProcess, workdir: Path) -> None:
        with ExitStack() as stack:
            all_peers = {peer.name: peer for peer in peers}
            peer_pids: dict[str, int] = {}
            if args.go_plugin:
                go = stack.enter_context(GoPluginProcess(Path(args.go_plugin), target, workdir))
                log(f"Go plugin pid {go.pid} listening on {go.address}")
                all_peers[GO_PLUGIN_NAME] = go.peer
                peer_pids[GO_PLUGIN_NAME] = go.pid
                peer_addresses[GO_PLUGIN_NAME] = f"{go.address} ({go.binary})"
            run_cells(target, server, workdir, all_peers, peer_pids)

    def run_cells(
        target: S3Target,
        server: ServerProcess,
        workdir: Path,
        all_peers: dict[str, RPCPeer],
        peer_pids: dict[str, int],
    ) -> None:
        pool = WorkerPool(args.client_processes)
        try:
            runner = CellRunner(
                pool, server, target, cell_settings, args.out, log, all_peers, peer_pids
            )
            log("writing the Read/Exists fixtures")
            runner.write_fixtures()
            for peer in all_peers.values():
                log(f"writing the Read/Exists fixtures through the peer {peer.name}")
                write_fixtures(peer, cell_settings.sizes, cell_settings.fixture_count)
            refused = set()
            for peer in all_peers.values():
                for name in peer_clients(peer, "rpc-msgpack" in cell_settings.clients):
                    problem = probe(peer, peer_codec(name), min(cell_settings.sizes))
                    if problem:
                        refused.add(name)
                        note = f"{name} left out: the peer does not serve our calls: {problem}"
                        log(note)
                        report.notes.append(note)
            runnable = [cell for cell in cells if cell.client not in refused]
            skipped = runner.run(runnable, report.cells, report.profiles, deadline)
            report.skipped.extend(f"{cell.name} {cell.client}" for cell in skipped)
        finally:
            pool.close()
        if not args.no_large:
            if time.monotonic() > deadline:
                report.skipped.append(f"large {format_size(large_size)}")
                return
            transfers = LargeTransfers(
                server, target, bucket, workdir, log, profile=large_profiles, results_dir=args.out
            )
            clients = ["rpc", "boto3"] if "boto3" in cell_settings.clients else ["rpc"]
            try:
                report.large.extend(transfers.run(large_size, clients, args.repeat))
            finally:
                report.profiles.extend(transfers.profiles)

    return _execute(report, args, external, bucket, body)


def _pair_cells(
    args: argparse.Namespace, peer: str, workloads: tuple[str, ...]
) -> tuple[str, CellSettings, list[PlannedCell]]:
    """The 4 KiB cells of ``workloads`` for ours ("rpc") and the second server ``peer``."""
    peer_client = peer_clients(RPCPeer(peer, ""), False)[0]
    cell_settings = CellSettings(
        connections=args.connections,
        sizes=[4 * 1024],
        clients=["rpc", peer_client],
        warmup=args.warmup,
        duration=args.duration,
        fixture_count=32,
        repeat=max(1, args.repeat),
        profile=[],
    )
    cells = [cell for cell in plan(cell_settings) if cell.workload in workloads]
    return peer_client, cell_settings, cells


def _run_pair(
    args: argparse.Namespace,
    report: RunReport,
    cells: list[PlannedCell],
    cell_settings: CellSettings,
    target: S3Target,
    server: ServerProcess,
    peer: str,
    peer_server: ServerProcess,
    *,
    peer_trees: frozenset[str] = frozenset(),
) -> None:
    """Run ``cells`` against ours and the started ``peer_server``, in turns."""
    pool = WorkerPool(args.client_processes)
    try:
        runner = CellRunner(
            pool, server, target, cell_settings, args.out, log,
            {peer: RPCPeer(peer, peer_server.address)}, {peer: peer_server.pid},
            peer_trees=peer_trees,
        )  # fmt: skip
        runner.write_fixtures()  # the same bucket and prefix: both servers see them
        skipped = runner.run(cells, report.cells, report.profiles, math.inf)
        report.skipped.extend(f"{cell.name} {cell.client}" for cell in skipped)
    finally:
        pool.close()


# -- metrics ----------------------------------------------------------------------------

METRICS_PEER = "metrics-on"
METRICS_CELLS = ("listbuckets", "read")


def command_metrics(args: argparse.Namespace, external: ExternalService | None) -> int:
    """Ours with metrics off ("rpc") against a second server with them on, in turns."""
    bucket = BucketSettings(part_size=args.part_size, concurrency=args.concurrency)
    peer_client, cell_settings, cells = _pair_cells(args, METRICS_PEER, METRICS_CELLS)
    settings = {
        **dataclasses.asdict(cell_settings),
        "client_processes": args.client_processes,
        "scrape_interval": args.scrape_interval,
        "server_workers": args.workers,
        "what": f"rpc = metrics off; {peer_client} = s3.metrics.address set, scraped every "
        f"{args.scrape_interval:g} s; ratio = off / on (1.03 = metrics cost 3%)",
    }
    report = _new_report("metrics", args, settings)
    log(f"{len(cells)} cells, about {estimate_seconds(cells, cell_settings) / 60:.1f} min")

    def body(target: S3Target, server: ServerProcess, workdir: Path) -> None:
        metrics_port = _free_loopback_port()
        on = ServerProcess(
            target,
            bucket,
            workdir,
            name=METRICS_PEER,
            workers=args.workers,
            s3_extra={"metrics": {"address": f"127.0.0.1:{metrics_port}"}},
        )
        with (
            on,
            Scraper(f"http://127.0.0.1:{metrics_port}/metrics", args.scrape_interval) as scraper,
        ):
            log(f"metrics-on server pid {on.pid} on {on.address}")
            _run_pair(args, report, cells, cell_settings, target, server, METRICS_PEER, on)
        report.notes.append(
            f"{scraper.scrapes} scrapes of the metrics-on server answered, {scraper.failures} "
            f"failed; the last was {scraper.last_size} bytes"
        )
        report.notes.extend(_cpu_per_call(report.cells))
        log("timing the dispatcher in-process, metrics off and on")
        report.notes.extend(metrics_cost.notes())

    return _execute(report, args, external, bucket, body)


# -- workers ----------------------------------------------------------------------------

WORKERS_CELLS = ("listbuckets", "read")


def command_workers(args: argparse.Namespace, external: ExternalService | None) -> int:
    """Ours with ``--workers`` ("rpc", 1) against a second server with ``--peer-workers``."""
    bucket = BucketSettings(part_size=args.part_size, concurrency=args.concurrency)
    peer = f"workers-{args.peer_workers}"
    peer_client, cell_settings, cells = _pair_cells(args, peer, WORKERS_CELLS)
    settings = {
        **dataclasses.asdict(cell_settings),
        "client_processes": args.client_processes,
        "server_workers": args.workers,
        "peer_workers": args.peer_workers,
        "what": f"rpc = s3.workers: {args.workers}; {peer_client} = s3.workers: "
        f"{args.peer_workers} (its server CPU counts the supervisor and its workers); "
        "ratio = rpc / peer "
        "(0.5 = the workers serve twice the calls)",
    }
    report = _new_report("workers", args, settings)
    log(f"{len(cells)} cells, about {estimate_seconds(cells, cell_settings) / 60:.1f} min")

    def body(target: S3Target, server: ServerProcess, workdir: Path) -> None:
        spread = ServerProcess(target, bucket, workdir, name=peer, workers=args.peer_workers)
        with spread:
            log(f"{args.peer_workers}-worker server pid {spread.pid} on {spread.address}")
            _run_pair(
                args, report, cells, cell_settings, target, server, peer, spread,
                peer_trees=frozenset({peer}),
            )  # fmt: skip
        report.notes.append(
            f"machine: {os.cpu_count()} cores, shared by the clients "
            f"({args.client_processes} processes), SeaweedFS and both servers"
        )

    return _execute(report, args, external, bucket, body)


def _cpu_per_call(cells: list[CellResult]) -> list[str]:
    """Server CPU per call, off and on: steadier than ops/s when the cores are shared."""
    per_call: dict[tuple[str, str], float] = {}
    for cell in cells:
        if cell.server_cores and cell.ops_per_second:
            key = (f"{cell.label} x{cell.connections}", cell.client)
            per_call[key] = cell.server_cores / cell.ops_per_second * 1e6
    notes = []
    for (name, client), off in sorted(per_call.items()):
        on = per_call.get((name, peer_clients(RPCPeer(METRICS_PEER, ""), False)[0]))
        if client == "rpc" and on is not None:
            notes.append(
                f"{name}: server CPU per call {off:.1f} us with metrics off, {on:.1f} us on "
                f"(on / off = {on / off:.3f})"
            )
    return notes


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Scraper:
    """GETs a /metrics URL every ``interval`` seconds in a thread, as Prometheus would."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.scrapes = 0
        self.failures = 0
        self.last_size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as answer:
                    self.last_size = len(answer.read())
                self.scrapes += 1
            except OSError:
                self.failures += 1

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- memory ---------------------------------------------------------------------------


def command_memory(args: argparse.Namespace, external: ExternalService | None) -> int:
    bucket = BucketSettings(part_size=args.part_size, concurrency=args.concurrency)
    settings = {
        "size": args.size,
        "server_workers": args.workers,
        "part_size": bucket.part_size,
        "concurrency": bucket.concurrency,
        "with_boto3": args.with_boto3,
    }
    report = _new_report("memory", args, settings)

    def body(target: S3Target, server: ServerProcess, workdir: Path) -> None:
        transfers = LargeTransfers(server, target, bucket, workdir, log)
        clients = ["rpc", "boto3"] if args.with_boto3 else ["rpc"]
        log(f"bound on the server's peak RSS growth: {transfers.bound / MIB:.0f} MiB")
        report.large.extend(transfers.run(args.size, clients))
        report.notes.append(
            f"Memory bound (issue 5): part_size x (concurrency + 2) + 32 MiB = "
            f"{format_size(bucket.part_size)} x ({bucket.concurrency} + 2) + 32 MiB = "
            f"{transfers.bound / MIB:.0f} MiB of server RSS growth during one transfer."
        )

    return _execute(report, args, external, bucket, body)


# -- shared -----------------------------------------------------------------------------


def _execute(
    report: RunReport,
    args: argparse.Namespace,
    external: ExternalService | None,
    bucket: BucketSettings,
    body: Callable[[S3Target, ServerProcess, Path], None],
    s3_extra: dict[str, object] | None = None,
) -> int:
    """Start the storage and the server, run ``body``, stop everything, write the results."""
    args.out.mkdir(parents=True, exist_ok=True)
    status = 0
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="trio-s3rpc-bench-", dir=args.workdir))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            starting = {"seaweedfs": "SeaweedFS", "rgw": "Ceph RGW"}[args.backend]
            log(f"starting {starting}" if external is None else f"using {external.endpoint}")
            target = stack.enter_context(open_target(workdir, external, args.backend))
            report.target = target.describe()
            server = stack.enter_context(
                ServerProcess(target, bucket, workdir, workers=args.workers, s3_extra=s3_extra)
            )
            log(f"server pid {server.pid} listening on {server.address}")
            body(target, server, workdir)
            report.finished = True
        except KeyboardInterrupt:
            report.error = "interrupted"
            status = 130
            log("interrupted: stopping everything")
        except Exception as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            status = 1
            log(f"failed: {report.error}")
    _write_outputs(report, args.out)
    return status


def _write_outputs(report: RunReport, out: Path) -> None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out / f"{report.kind}-{stamp}"
    text = render(report)
    log("\n" + text)
    write_json(report, base.with_suffix(".json"))
    base.with_suffix(".txt").write_text(text + "\n")
    written = [base.with_suffix(".json"), base.with_suffix(".txt")]
    try:
        if write_chart(report, base.with_suffix(".png")):
            written.append(base.with_suffix(".png"))
    except ImportError:
        log("matplotlib is not installed: no chart (pip install 'trio-s3rpc[bench]')")
    log("results: " + ", ".join(str(path) for path in written))


def command_checksums(args: argparse.Namespace) -> int:
    from benchmarks.report import table

    results = checksums.run(args.seconds)
    text = (
        f"Checksums over {format_size(checksums.BUFFER_SIZE)} buffers (best of rounds)\n"
        + table(
            ["function", "MB/s", "MiB/s", "ms per 5 MiB part"],
            [
                [
                    r.name,
                    f"{r.mb_per_second:,.0f}",
                    f"{r.mib_per_second:,.0f}",
                    f"{r.ms_per_part:.3f}",
                ]
                for r in results
            ],
        )
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"checksums-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "machine": machine_info(),
        "versions": versions(None),
        "results": [dataclasses.asdict(r) for r in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results: {path}")
    return 0
