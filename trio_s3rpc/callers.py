"""Who is at the other end of a connection: the peer process's credentials.

Over a unix socket the kernel says which process connected (``SO_PEERCRED``:
its pid, uid and gid at ``connect``), and nobody can forge it. The RPC
server reads it once per connection and puts it in a context variable for
the connection's task; Trio copies the context into every call the
connection starts, so the storage code that opens a caller's local files
(``storage/localpaths.py``, under ``s3.local_files: peer``) can act with
that user's rights without the layers between knowing. Over tcp there is no
such answer, and :func:`current` is None.
"""

from __future__ import annotations

import contextvars
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class _Socket(Protocol):
    """What is read of a socket (the standard library's or trio's)."""

    @property
    def family(self) -> int: ...

    def getsockopt(self, level: int, option: int, size: int, /) -> bytes: ...


@dataclass(slots=True, frozen=True)
class Caller:
    pid: int
    uid: int
    gid: int


_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "trio_s3rpc_caller", default=None
)


def current() -> Caller | None:
    """The running call's peer over a unix socket; None over tcp (or outside a call)."""
    return _current.get()


def enter(caller: Caller | None) -> None:
    """Make ``caller`` the peer of the current task and of the tasks it starts."""
    _current.set(caller)


def of_socket(sock: _Socket) -> Caller | None:
    """The peer credentials of a connected unix socket; None for any other socket."""
    if sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return None
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Caller(pid, uid, gid)
