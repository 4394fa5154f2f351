"""A server under ``ulimit -n LIMIT`` whose spare descriptor another consumer took.

Run as ``python -m tests.support.fd_pressure LIMIT``: serves the offline test
config in this process, prints its address, then reads commands on stdin, one
per line, answering ``ok`` to each:

- ``steal``: another consumer in the process (the janitor's S3 client, a log
  file, a thread) takes the descriptor the server had just given up, and
  every other free one: the server's spare is gone and no descriptor is free;
- ``release N``: that consumer closes N of the descriptors it holds.

This is the moment the accept loop must survive: with no spare to give up, a
client waiting in the backlog must still be told (closed) or served, never
left waiting.
"""

from __future__ import annotations

import os
import sys

import trio

from tests.support.server import config_dict, running_app
from tests.support.workers import _limit_open_files


def _grab_all() -> list[int]:
    taken: list[int] = []
    while True:
        try:
            taken.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            return taken


async def main(limit: int) -> None:
    _limit_open_files(limit)
    held: list[int] = []
    async with running_app(config_dict()) as (app, address):
        print(address, flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(0))
        pending = b""
        while True:
            chunk = await stdin.receive_some(4096)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                command = line.decode().split()
                if command[0] == "steal":
                    server = app.server
                    if server._spare_fd >= 0:
                        os.close(server._spare_fd)
                        server._spare_fd = -1
                    held.extend(_grab_all())
                elif command[0] == "release":
                    for _ in range(int(command[1])):
                        if held:
                            os.close(held.pop())
                print("ok", flush=True)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
