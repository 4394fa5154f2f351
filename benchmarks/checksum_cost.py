"""What end-to-end checksums cost: the algorithms alone, then whole transfers with and without.

``python -m benchmarks.checksum_cost [--size-mib 256] [--rounds 3]``

Part 1 times each candidate algorithm over in-memory buffers
(``benchmarks.checksums``): zlib's CRC32, the ``crc32c`` C extension,
SHA-256 and MD5 from hashlib. It is why the server uses CRC32C.

Part 2 starts a private SeaweedFS (as ``serve --embedded`` does) and the
server in this process, and times WriteFile and ReadFile of one file with
checksums as shipped, under each ``checksums`` policy, and without any
(``when_required`` with the CRC computation replaced by a no-op and the
metadata self-copy after multipart uploads skipped). Each figure is the
best of ``rounds``, as wall-clock throughput and as the CPU seconds this
process spent; each ratio is the transfer with checksums over the same
transfer without them (1.00 = free). On a small machine the wall-clock
figures of a service on the same disk vary by tens of percent from run to
run; the CPU ratio is the steady measure of what the checksums cost. ``when_supported`` adds the
``x-amz-checksum-crc32c`` header and the SHA-256 payload signature that the
transport sends under that policy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import trio

from benchmarks.checksums import run as algorithm_speeds
from tests.support.server import config_dict, endpoint_server, running_app
from trio_s3rpc import checksums
from trio_s3rpc.client import RPCClient
from trio_s3rpc.embedded import EmbeddedSeaweedFS
from trio_s3rpc.storage import copies

MIB = 1024 * 1024
BUCKET = "checksum-bench"


@contextmanager
def checksums_switched_off() -> Iterator[None]:
    """No CRC computed anywhere, no self-copy to store it: the transfer without checksums."""

    def no_crc(data: Any, value: int = 0) -> int:
        return value

    async def no_attach(*args: Any) -> Any:
        return args[-1]

    saved_crc, saved_attach = checksums.crc32c, copies.attach_checksum
    setattr(checksums, "crc32c", no_crc)  # noqa: B010 - swapped out for the baseline
    setattr(copies, "attach_checksum", no_attach)  # noqa: B010
    try:
        yield
    finally:
        setattr(checksums, "crc32c", saved_crc)  # noqa: B010
        setattr(copies, "attach_checksum", saved_attach)  # noqa: B010


VARIANTS = {
    # name: (checksums policy, checksums switched off)
    "without checksums": ("when_required", True),
    "when_required": ("when_required", False),
    "when_supported": ("when_supported", False),
}


async def time_transfers(endpoint: Any, source: Path, rounds: int) -> dict[str, list[float]]:
    """Per variant, the best wall-clock and CPU seconds of WriteFile and of ReadFile of
    ``source``: ``[write wall, read wall, write CPU, read CPU]``. CPU is this process's
    (the server's and the client's, all threads), far steadier than wall-clock time.

    The variants take turns within each round, so a slow spell of the
    service or the disk does not land on one of them only; run a multiple
    of three rounds.
    """
    servers = {
        policy: {**endpoint_server(endpoint), "checksums": policy}
        for policy in ("when_required", "when_supported")
    }
    buckets = {
        name: {
            "server": policy,
            "bucket": BUCKET,
            "visibility_mode": "none",
            "prefix": f"{name.replace(' ', '-')}/",
        }
        for name, (policy, _) in VARIANTS.items()
    }
    config = config_dict(buckets=buckets, s3={"local_roots": [str(source.parent)]})
    config["s3"]["servers"] = servers
    destination = source.with_name("downloaded.bin")
    best = {name: [float("inf")] * 4 for name in VARIANTS}
    names = list(VARIANTS)
    async with running_app(config) as (_, address), await RPCClient.connect(address) as rpc:
        # Writes first, then reads of what the last writes left: a read is not
        # slowed by the service still settling the write just before it.
        for index, method in enumerate(("s3.WriteFile", "s3.ReadFile")):
            for round_number in range(rounds):
                # Each variant takes each place in the order in turn, so what ran
                # just before weighs on all of them alike.
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    args = {"bucket": name, "pathname": "f.bin"}
                    if method == "s3.WriteFile":
                        args["source_path"] = str(source)
                    else:
                        args["destination_path"] = str(destination)
                    with checksums_switched_off() if VARIANTS[name][1] else nullcontext():
                        started, cpu = time.perf_counter(), time.process_time()
                        await rpc.call(method, args)
                        wall = time.perf_counter() - started
                        cpu = time.process_time() - cpu
                    best[name][index] = min(best[name][index], wall)
                    best[name][index + 2] = min(best[name][index + 2], cpu)
    destination.unlink()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="file size (default 256)")
    parser.add_argument("--rounds", type=int, default=6, help="best of N (default 6)")
    args = parser.parse_args()
    size = args.size_mib * MIB

    print("algorithms over 5 MiB buffers in memory (the same as `python -m benchmarks checksums`):")
    for result in algorithm_speeds():
        print(f"  {result.name:<36} {result.mb_per_second:>8,.0f} MB/s")

    with tempfile.TemporaryDirectory(prefix="checksum-bench-") as scratch:
        root = Path(scratch)
        source = root / "files" / "source.bin"
        source.parent.mkdir()
        source.write_bytes(os.urandom(size))
        seaweed = EmbeddedSeaweedFS(root / "seaweedfs", buckets=[BUCKET])
        endpoint = seaweed.start()
        try:
            print(
                f"\n{args.size_mib} MiB WriteFile/ReadFile against SeaweedFS (best of "
                f"{args.rounds}; ratio = with checksums / without):"
            )
            best = trio.run(time_transfers, endpoint, source, args.rounds)
            bare = best["without checksums"]
            print(f"  {'':<17} {'':<9} {'wall':>9} {'ratio':>6} {'CPU s':>7} {'ratio':>6}")
            for name, timed in best.items():
                for index, label in enumerate(("WriteFile", "ReadFile")):
                    wall, cpu = timed[index], timed[index + 2]
                    print(
                        f"  {name:<17} {label:<9} {size / wall / 1e6:4.0f} MB/s "
                        f"{wall / bare[index]:6.2f} {cpu:7.2f} {cpu / bare[index + 2]:6.2f}"
                    )
        finally:
            seaweed.stop()


if __name__ == "__main__":
    main()
