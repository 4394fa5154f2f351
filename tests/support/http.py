"""Reading HTTP/1.1 requests off a trio stream, for the scripted servers of the s3 tests.

Each takes the bytes already received (``buffer``) and answers what it read
with the bytes left over, or None when the client hung up first.
"""

from __future__ import annotations

import trio

RECEIVE_SIZE = 65536


async def read_head(stream: trio.abc.ReceiveStream, buffer: bytes) -> tuple[bytes, bytes] | None:
    """The request head (without its blank line) and the bytes after it."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            return None
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def content_length(head: bytes) -> int:
    """The head's Content-Length (0 without one)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def read_body(
    stream: trio.abc.ReceiveStream, buffer: bytes, length: int
) -> tuple[bytes, bytes] | None:
    """``length`` bytes of body and the bytes after them."""
    while len(buffer) < length:
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            return None
        buffer += data
    return buffer[:length], buffer[length:]
