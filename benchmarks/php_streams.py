"""PHP streams against the server's own file transfers, same run, same file.

``writeStream``/``readStream`` of the PHP package (``php/``) under a PHP
``memory_limit``, over JSON and msgpack, beside ``s3.WriteFile``/``s3.ReadFile``
of the same file by the same server (the server reading and writing the disk
itself: the ceiling a PHP stream through RPC can approach). Every round runs
every transfer once, in turn, against the embedded SeaweedFS. With
``--peer-tree`` a second server runs the code of another checkout (say
``/work/main``), so a change to the server is measured before and after in the
same run; the PHP client is this tree's for both, or with ``--peer-php`` the
peer's own for the peer (a change to the PHP package, before and after).

    python -m benchmarks.php_streams --size 500MiB --memory-limit 48M --rounds 2 \\
        [--peer-tree ../main [--peer-php]]

Figures: MiB/s of each transfer (median over rounds), PHP's peak memory
(``memory_get_peak_usage(true)``, largest over rounds), the server's peak RSS
growth during the transfer (largest over rounds; for WriteFile/ReadFile the only
memory in play) and the ratio of each stream's time to the server's own
transfer in the same direction.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from benchmarks.large import make_source_file
from benchmarks.procstat import PeakMemory
from benchmarks.server import BucketSettings, ServerProcess
from benchmarks.target import open_target
from benchmarks.units import MIB, parse_size
from trio_s3rpc.client import RPCClient

REPO = Path(__file__).resolve().parents[1]
PHP_SCRIPT = REPO / "php" / "tests" / "scripts" / "stream-bench.php"
CODECS = ("json", "msgpack")


@dataclass
class Figures:
    seconds: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    server_growth: list[int] = field(default_factory=list)

    def rate(self, size: int) -> float:
        return size / MIB / statistics.median(self.seconds)


async def server_transfers(
    address: str, pid: int, source: Path, destination: Path
) -> tuple[tuple[float, int], tuple[float, int]]:
    """Seconds and the server's peak RSS growth of s3.WriteFile and of s3.ReadFile."""
    key = f"php-stream-bench/server-{os.getpid()}.bin"
    async with await RPCClient.connect(address) as rpc:
        with PeakMemory(pid) as write_memory:
            started = time.perf_counter()
            await rpc.call("s3.WriteFile", {"pathname": key, "source_path": str(source)})
            written = time.perf_counter() - started
        with PeakMemory(pid) as read_memory:
            started = time.perf_counter()
            await rpc.call("s3.ReadFile", {"pathname": key, "destination_path": str(destination)})
            read = time.perf_counter() - started
        await rpc.call("s3.Delete", {"pathname": key})
    return (written, write_memory.growth), (read, read_memory.growth)


def php_streams(
    script: Path, address: str, codec: str, source: Path, chunk: int, memory_limit: str
) -> dict[str, float]:
    command = [
        "php",
        "-d",
        f"memory_limit={memory_limit}",
        str(script),
        address,
        codec,
        str(source),
        str(chunk),
    ]
    result = subprocess.run(command, capture_output=True, check=False, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"PHP {codec} failed: {result.stderr.decode(errors='replace')}")
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="500MiB")
    parser.add_argument(
        "--chunk", default="4MiB", help="ClientOptions chunkSize of the PHP streams"
    )
    parser.add_argument("--memory-limit", default="48M")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--peer-tree", type=Path, help="another checkout whose server runs beside this one"
    )
    parser.add_argument(
        "--peer-php",
        action="store_true",
        help="the peer's server is called by the peer's own PHP client, not this tree's",
    )
    args = parser.parse_args(argv)
    if args.peer_php and args.peer_tree is None:
        parser.error("--peer-php needs --peer-tree")
    size, chunk = parse_size(args.size), parse_size(args.chunk)
    with tempfile.TemporaryDirectory(prefix="php-streams-") as scratch:
        workdir = Path(scratch)
        source = make_source_file(workdir / "source.bin", size).path
        settings = BucketSettings(part_size=8 * MIB, concurrency=4)
        with open_target(workdir, None) as target:
            servers = {"this tree": ServerProcess(target, settings, workdir, name="this")}
            scripts = {"this tree": PHP_SCRIPT}
            if args.peer_tree is not None:
                peer = args.peer_tree.resolve()
                peer_name = f"peer {args.peer_tree}" + (
                    " (its PHP client too)" if args.peer_php else ""
                )
                servers[peer_name] = ServerProcess(
                    target, settings, workdir, name="peer", tree=peer
                )
                scripts[peer_name] = (
                    peer / PHP_SCRIPT.relative_to(REPO) if args.peer_php else PHP_SCRIPT
                )
            results: dict[tuple[str, str], Figures] = {}
            for server in servers.values():
                server.start()
            try:
                for round_number in range(args.rounds):
                    for name, server in servers.items():
                        written, read = trio.run(
                            server_transfers,
                            server.address,
                            server.pid,
                            source,
                            workdir / "read.bin",
                        )
                        (workdir / "read.bin").unlink()
                        own = (("WriteFile", written), ("ReadFile", read))
                        for label, (seconds, growth) in own:
                            entry = results.setdefault((name, label), Figures())
                            entry.seconds.append(seconds)
                            entry.server_growth.append(growth)
                        for codec in CODECS:
                            with PeakMemory(server.pid) as server_memory:
                                figures = php_streams(
                                    scripts[name],
                                    server.address,
                                    codec,
                                    source,
                                    chunk,
                                    args.memory_limit,
                                )
                            for direction in ("write", "read"):
                                entry = results.setdefault(
                                    (name, f"{direction}Stream {codec}"), Figures()
                                )
                                entry.seconds.append(figures[f"{direction}_seconds"])
                                entry.peaks.append(int(figures[f"{direction}_peak"]))
                                # One PHP run streams both ways: the server's peak covers both.
                                entry.server_growth.append(server_memory.growth)
                    print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
            finally:
                for server in servers.values():
                    server.stop()
    print(
        f"{args.size} file, PHP memory_limit={args.memory_limit}, chunk {args.chunk}, "
        f"{args.rounds} rounds (median MiB/s; PHP peak memory, largest)"
    )
    for name in servers:
        print(f"\n{name}:")
        bases = {"write": results[(name, "WriteFile")], "read": results[(name, "ReadFile")]}
        for direction in ("write", "read"):
            base = bases[direction]
            label = "WriteFile" if direction == "write" else "ReadFile"
            print(
                f"  {label:<22} {base.rate(size):7.1f} MiB/s  {'':31}"
                f"server RSS +{max(base.server_growth) / MIB:.0f} MiB"
            )
            for codec in CODECS:
                entry = results[(name, f"{direction}Stream {codec}")]
                ratio = statistics.median(entry.seconds) / statistics.median(base.seconds)
                print(
                    f"  {direction + 'Stream ' + codec:<22} {entry.rate(size):7.1f} MiB/s  "
                    f"{ratio:4.2f}x the server's time  peak {max(entry.peaks) / MIB:5.1f} MiB  "
                    f"server RSS +{max(entry.server_growth) / MIB:.0f} MiB (write and read)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
