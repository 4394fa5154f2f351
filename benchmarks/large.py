"""Large files: WriteFile/ReadFile through the server against boto3's upload_file/download_file.

Each transfer is timed on its own and watched by :class:`PeakMemory`: the
server process for ours (that is what issue 5 bounds), the harness process
for boto3 (which runs in it). boto3's s3transfer gets the bucket's part size
and concurrency, so both move the same parts with the same parallelism. A
download counts only if the file that arrived has the source's digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

from benchmarks.procstat import CpuReading, PeakMemory
from benchmarks.profiling import Profile, PySpyRecording, find_pyspy
from benchmarks.results import LargeResult, memory_bound
from benchmarks.runner import profile_file_name
from benchmarks.server import RPC_BUCKET, BucketSettings, ServerProcess
from benchmarks.target import S3Target
from benchmarks.units import MIB, format_size
from trio_s3rpc.client import RPCClient

WRITE_BLOCK = 8 * MIB
PYSPY_ATTACH_SECONDS = 0.5
LARGE_TIMEOUT = 1800.0

Progress = Callable[[str], None]


@dataclass(slots=True, frozen=True)
class SourceFile:
    path: Path
    size: int
    digest: str


def make_source_file(path: Path, size: int) -> SourceFile:
    """A file of random bytes (incompressible, undeduplicable) and its MD5."""
    digest = hashlib.md5()
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            block = os.urandom(min(WRITE_BLOCK, remaining))
            digest.update(block)
            handle.write(block)
            remaining -= len(block)
    return SourceFile(path, size, digest.hexdigest())


def file_digest(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while block := handle.read(WRITE_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def rpc_call(address: str, method: str, args: dict[str, Any]) -> Any:
    """One call on a fresh connection, bounded by LARGE_TIMEOUT."""

    async def call() -> Any:
        with trio.fail_after(LARGE_TIMEOUT):
            async with await RPCClient.connect(address, codec="json") as rpc:
                return await rpc.call(method, args)

    return trio.run(call)


class LargeTransfers:
    """The large-file cells of one run, sharing one source file."""

    def __init__(
        self,
        server: ServerProcess,
        target: S3Target,
        bucket: BucketSettings,
        workdir: Path,
        progress: Progress,
        *,
        profile: frozenset[str] = frozenset(),
        results_dir: Path | None = None,
    ) -> None:
        self.server = server
        self.target = target
        self.bucket = bucket
        self.workdir = workdir
        self.progress = progress
        self.bound = memory_bound(bucket.part_size, bucket.concurrency)
        self.profile = profile
        self.results_dir = results_dir or workdir
        self.profiles: list[Profile] = []

    def run(self, size: int, clients: list[str], rounds: int = 1) -> list[LargeResult]:
        """Upload then download ``size`` bytes with each client; the results in that order.

        First one unmeasured upload and download by each client: on this kind
        of machine (a VM) the first writes into fresh page cache cost several
        times the kernel CPU of later ones (measured in one process, ReadFile
        of 512 MiB three times: 2.5, 1.2 and 0.6 ms of system CPU per MiB), and
        whichever client went first paid for it. Then ``rounds`` measured
        rounds, the clients' order reversed every other round; each client's
        median is reported (see :func:`_median`). Measured here: the first
        download of a round took about twice as long as the second, whichever
        client made it, which the alternating order shares out evenly.
        """
        self.progress(f"writing a {format_size(size)} source file")
        source = make_source_file(self.workdir / "large-source.bin", size)
        uploads: dict[str, list[LargeResult]] = {client: [] for client in clients}
        downloads: dict[str, list[LargeResult]] = {client: [] for client in clients}
        try:
            self.progress("warm-up: one unmeasured upload and download by each client")
            for client in clients:
                self.upload(client, source)
                self.download(client, source)
            for number in range(rounds):
                order = clients if number % 2 == 0 else clients[::-1]
                suffix = f" (round {number + 1})" if rounds > 1 else ""
                for client in order:
                    uploads[client].append(self.upload(client, source))
                    self.progress(self._line(uploads[client][-1]) + suffix)
                for client in order:
                    downloads[client].append(self.download(client, source))
                    self.progress(self._line(downloads[client][-1]) + suffix)
            self._profile_runs(source)
        finally:
            source.path.unlink(missing_ok=True)
        return [_median(uploads[client]) for client in clients] + [
            _median(downloads[client]) for client in clients
        ]

    def _profile_runs(self, source: SourceFile) -> None:
        """Repeat the rpc transfers named in ``profile`` under py-spy (an extra run each,
        so that the sampling's CPU does not slow the figures above)."""
        binary = find_pyspy()
        for operation, run in (("writefile", self.upload), ("readfile", self.download)):
            if operation not in self.profile:
                continue
            if binary is None:
                self.progress(f"cannot profile {operation}: py-spy not found")
                continue
            output = self.results_dir / profile_file_name(operation)
            recording = PySpyRecording(
                binary, self.server.pid, output, operation, subprocesses=self.server.workers > 1
            )
            time.sleep(PYSPY_ATTACH_SECONDS)
            try:
                result = run("rpc", source)
            finally:
                recording.stop()
                profile = recording.finish()
            profile.ops_per_second = result.mib_per_second
            self.profiles.append(profile)
            self.progress(f"      profiled: {self._line(result)}")

    def _pathname(self, client: str, size: int) -> str:
        return f"large/{client}-{format_size(size)}.bin"

    def upload(self, client: str, source: SourceFile) -> LargeResult:
        """One timed upload of ``source``: s3.WriteFile (``rpc``) or upload_file (``boto3``)."""
        pathname = self._pathname(client, source.size)
        if client == "rpc":
            args = {"bucket": RPC_BUCKET, "pathname": pathname, "source_path": str(source.path)}

            def transfer() -> bool:
                answer = rpc_call(self.server.address, "s3.WriteFile", args)
                return bool(answer.get("size") == source.size)

        else:
            s3 = self.target.boto3_client(max_pool_connections=self.bucket.concurrency)
            key = self.target.prefix + pathname

            def transfer() -> bool:
                s3.upload_file(str(source.path), self.target.bucket, key, Config=self._config())
                head = s3.head_object(Bucket=self.target.bucket, Key=key)
                return bool(head["ContentLength"] == source.size)

        return self._measure("WriteFile", client, source.size, transfer)

    def download(self, client: str, source: SourceFile) -> LargeResult:
        """One timed download of what :meth:`upload` stored, its digest checked afterwards."""
        pathname = self._pathname(client, source.size)
        destination = self.workdir / f"large-{client}-download.bin"
        if client == "rpc":
            args = {
                "bucket": RPC_BUCKET,
                "pathname": pathname,
                "destination_path": str(destination),
            }

            def transfer() -> bool:
                rpc_call(self.server.address, "s3.ReadFile", args)
                return True

        else:
            s3 = self.target.boto3_client(max_pool_connections=self.bucket.concurrency)
            key = self.target.prefix + pathname

            def transfer() -> bool:
                s3.download_file(self.target.bucket, key, str(destination), Config=self._config())
                return True

        try:
            result = self._measure("ReadFile", client, source.size, transfer)
            # Checked after the clock stopped: a digest is not part of a download's cost.
            result.verified = file_digest(destination) == source.digest
        finally:
            destination.unlink(missing_ok=True)
        return result

    def _config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.bucket.part_size,
            multipart_chunksize=self.bucket.part_size,
            max_concurrency=self.bucket.concurrency,
            use_threads=True,
        )

    def _measure(
        self, operation: str, client: str, size: int, transfer: Callable[[], bool]
    ) -> LargeResult:
        # With workers the transfer runs in one of them: the largest growth is its.
        watched = self.server.worker_pids if client == "rpc" else [os.getpid()]
        storage = list(self.target.storage_pids)
        server = self.server.pids
        pids = [*server, os.getpid(), *storage]
        # Every transfer starts with no dirty page cache: otherwise one pays for writing
        # back the file the previous one left (ReadFile fsyncs its own; boto3 does not).
        os.sync()
        with ExitStack() as stack:
            memories = [stack.enter_context(PeakMemory(pid)) for pid in watched]
            before = CpuReading.take(pids, time.monotonic())
            verified = transfer()
            after = CpuReading.take(pids, time.monotonic())
        seconds = after.at - before.at
        growth = max(memory.growth for memory in memories) / MIB
        # WriteFile's parts grow past 10,000 parts of part_size; ReadFile's ranges do not.
        upload_size = size if operation == "WriteFile" else 0
        bucket = self.bucket
        planned = memory_bound(bucket.part_size, bucket.concurrency, upload_size)
        bound = planned / MIB if client == "rpc" else None
        return LargeResult(
            operation=operation,
            client=client,
            size=size,
            seconds=round(seconds, 3),
            mib_per_second=round(size / MIB / seconds, 1),
            rss_growth_mib=round(growth, 1),
            rss_process="server" if client == "rpc" else "client",
            bound_mib=round(bound, 1) if bound is not None else None,
            within_bound=growth <= bound if bound is not None else None,
            server_cores=_round(after.cores_since(before, server)),
            storage_cores=_round(after.cores_since(before, storage) if storage else None),
            client_cores=_round(after.cores_since(before, [os.getpid()]))
            if client == "boto3"
            else None,
            other_cores=_round(after.outside_cores_since(before, pids)),
            kernel_cores=_round(after.kernel_cores_since(before)),
            verified=verified,
        )

    @staticmethod
    def _line(result: LargeResult) -> str:
        bound = f" (bound {result.bound_mib:.0f} MiB)" if result.bound_mib is not None else ""
        return (
            f"{result.operation:<9} {format_size(result.size):>6} {result.client:<6} "
            f"{result.mib_per_second:8.1f} MiB/s  {result.seconds:7.2f} s  "
            f"{result.rss_process} RSS +{result.rss_growth_mib:.1f} MiB{bound}"
            f"{'' if result.verified else '  NOT VERIFIED'}"
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _median(results: list[LargeResult]) -> LargeResult:
    """The rounds as one result, as ``runner.median_round`` does for every other cell:
    the median speed (of an even count, the mean of the middle two), the other
    figures of the round nearest to it."""
    middle = statistics.median(result.mib_per_second for result in results)
    kept = min(results, key=lambda result: abs(result.mib_per_second - middle))
    return dataclasses.replace(
        kept,
        mib_per_second=round(middle, 1),
        seconds=round(kept.size / MIB / middle, 3),
    )
