"""How fast each checksum the S3 stack could use runs here, over 5 MiB buffers (one part).

Figures are the best of several rounds, in MB/s (10^6 bytes) and MiB/s, and
the time one 5 MiB part costs. ``crc32c`` is measured when the package of
that name is installed. base64 is included because every JSON-codec byte
of ``s3.Write``/``s3.Read`` content passes through it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.units import MIB

BUFFER_SIZE = 5 * MIB
ROUNDS = 3


@dataclass(slots=True, frozen=True)
class ChecksumResult:
    name: str
    mb_per_second: float
    mib_per_second: float
    ms_per_part: float


def candidates() -> dict[str, Callable[[bytes], object]]:
    """The functions to measure, those whose packages are missing left out."""
    found: dict[str, Callable[[bytes], object]] = {
        "zlib.crc32": zlib.crc32,
        "hashlib.md5": lambda data: hashlib.md5(data).digest(),
        "hashlib.sha1": lambda data: hashlib.sha1(data).digest(),
        "hashlib.sha256": lambda data: hashlib.sha256(data).digest(),
        "base64.b64encode": base64.b64encode,
    }
    try:
        import crc32c

        found["crc32c.crc32c"] = crc32c.crc32c
    except ImportError:
        pass
    encoded = base64.b64encode(bytes(BUFFER_SIZE))
    found["base64.b64decode (of 5 MiB decoded)"] = lambda _: base64.b64decode(encoded)
    return found


def measure(function: Callable[[bytes], object], data: bytes, seconds: float) -> float:
    """Bytes per second: the best of ROUNDS rounds of at least ``seconds / ROUNDS`` each."""
    best = 0.0
    for _ in range(ROUNDS):
        calls = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds / ROUNDS or calls == 0:
            function(data)
            calls += 1
        best = max(best, calls * len(data) / elapsed)
    return best


def run(seconds: float = 1.5) -> list[ChecksumResult]:
    data = os.urandom(BUFFER_SIZE)
    results = []
    for name, function in candidates().items():
        rate = measure(function, data, seconds)
        results.append(
            ChecksumResult(
                name=name,
                mb_per_second=round(rate / 1e6, 1),
                mib_per_second=round(rate / MIB, 1),
                ms_per_part=round(BUFFER_SIZE / rate * 1000, 3),
            )
        )
    return results
