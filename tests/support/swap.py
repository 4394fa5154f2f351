"""A directory entry swapped with a symlink in a loop, as an attacker racing the server would.

The swapping runs in a child process (no GIL shared with the server under
test) and exchanges two names atomically with ``renameat2(RENAME_EXCHANGE)``,
so at every instant one of the names is the directory and the other the
symlink. It stops by itself after ``seconds``, or when the context exits.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SWAPPER = """
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
first, second, seconds = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
deadline = time.monotonic() + seconds
print("swapping", flush=True)
while time.monotonic() < deadline:
    for _ in range(500):
        if libc.renameat2(AT_FDCWD, first, AT_FDCWD, second, RENAME_EXCHANGE) != 0:
            sys.exit("renameat2: errno %d" % ctypes.get_errno())
"""


@contextmanager
def swapping(first: Path, second: Path, seconds: float) -> Iterator[None]:
    """Exchange ``first`` and ``second`` over and over while the block runs."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, str(first), str(second), str(seconds)],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"swapping\n"
        yield
    finally:
        process.kill()
        process.wait()
