"""httpcore's exceptions, as this HTTP client raises them: one table maps the rest into them.

The connection (:mod:`trio_s3rpc.s3.http11`) raises httpcore's exception
types, so that what a caller catches is what httpcore's own connection would
raise on the same failure (``tests/s3/test_http11.py`` compares them). Below
it, the stream (:mod:`trio_s3rpc.s3.stream`) fails with trio's, the
system's and ssl's exceptions, and h11 with its own; :data:`EXCEPTION_MAP`
says, for each phase of a request, which of them becomes which, and
:class:`map_exceptions` applies it where the connection calls down, as
httpcore's ``map_exceptions`` does. :data:`HTTP_ERRORS` is everything the
client raises for a request that did not get through: what the transport
turns into ``S3Error``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import TracebackType

import h11
import httpcore
import trio


class Phase(enum.Enum):
    CONNECT = "connect"
    READ = "read"
    WRITE = "write"


# A connection that broke, was reset or was closed under a waiting task; OSError
# includes ssl.SSLError, a refused handshake.
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

# Per phase, which failure becomes which of httpcore's types (the first entry
# that matches, in order); the message is the failure's own. Cancellation and
# anything not listed (a caller's body that fails as it is read, say) pass
# unchanged.
EXCEPTION_MAP: Mapping[
    Phase, Mapping[type[Exception] | tuple[type[Exception], ...], type[Exception]]
] = {
    Phase.CONNECT: {trio.TooSlowError: httpcore.ConnectTimeout, _BROKEN: httpcore.ConnectError},
    Phase.READ: {
        trio.TooSlowError: httpcore.ReadTimeout,
        _BROKEN: httpcore.ReadError,
        h11.RemoteProtocolError: httpcore.RemoteProtocolError,
    },
    Phase.WRITE: {
        trio.TooSlowError: httpcore.WriteTimeout,
        _BROKEN: httpcore.WriteError,
        h11.LocalProtocolError: httpcore.LocalProtocolError,
    },
}

# Everything httpcore raises for a request that did not get through.
HTTP_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
)


class map_exceptions:
    """A context manager that raises, in place of a failure of ``phase``, httpcore's
    exception for it. A class rather than a generator: it wraps every read and write."""

    __slots__ = ("_table", "_types")

    def __init__(self, phase: Phase) -> None:
        self._table = tuple(EXCEPTION_MAP[phase].items())
        self._types = tuple(
            kind
            for source, _ in self._table
            for kind in (source if isinstance(source, tuple) else (source,))
        )

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, self._types):
            return
        for source, target in self._table:
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__) from exc


CONNECTING = map_exceptions(Phase.CONNECT)
READING = map_exceptions(Phase.READ)
WRITING = map_exceptions(Phase.WRITE)
