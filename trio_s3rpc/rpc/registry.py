"""The method registry: every method by its wire name.

A method is declared once, here: its name, request and response dataclasses,
async handler, and how the metrics count it (:class:`Counted`: its operation
label and which bucket a call is labelled with). ``dispatch.py`` finds it by
name and runs it; ``metrics/calls.py`` reads its :class:`Counted`.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.rpc.decoding import Decoder, RequestDecoder, ResponseEncoder

Req = TypeVar("Req")
# Unknown names up to this long get a "did you mean" (method names are about 20).
MAX_SUGGESTED_LENGTH = 64
Resp = TypeVar("Resp")


class BucketLabel(enum.Enum):
    """Which bucket a call is counted under in the metrics."""

    #: No bucket (ListBuckets, TransferStatus, Cancel).
    NONE = "none"
    #: The call's ``bucket`` field (the default bucket when empty).
    BUCKET = "bucket"
    #: ``dest_bucket``; a Move's delete, and a bad source, on ``source_bucket``.
    COPY = "copy"
    #: The bucket of the chunked upload its ``upload_id`` names.
    UPLOAD = "upload"
    #: The bucket it registers (``name``).
    REGISTERED = "registered"


#: Object bytes a successful call moved: f(request, response).
ByteCount = Callable[[Any, Any], int]


@dataclasses.dataclass(slots=True, frozen=True)
class Counted:
    """How a method's calls are counted.

    ``operations`` are its ``operation`` label values of ``rr_s3_operations_total``:
    the Go plugin's names for its methods (a Move is a ``copy`` and a
    ``delete``), our own for the rest. ``written`` and ``read`` count the
    object bytes a successful call moved.
    """

    operations: tuple[str, ...]
    bucket: BucketLabel = BucketLabel.BUCKET
    written: ByteCount | None = None
    read: ByteCount | None = None


@dataclasses.dataclass(slots=True, frozen=True)
class Method(Generic[Req, Resp]):
    name: str
    handler: Callable[[Req], Awaitable[Resp]]
    decoder: Decoder[Req]
    encoder: ResponseEncoder
    # True for methods that never wait on I/O (answered without a task of their own).
    inline: bool = False
    # False for methods whose own fields are named transfer_id/timeout (s3.Cancel).
    controllable: bool = True
    # How the metrics count it; None: as a call to an unknown method.
    counted: Counted | None = None
    # The handler itself for a method that never awaits (``MethodRegistry.add_now``):
    # the server answers it without a coroutine (``handler`` is then its async form).
    now: Callable[[Req], Resp] | None = None


class MethodRegistry:
    """Methods by their full wire name (``s3.Write``)."""

    def __init__(self) -> None:
        self._methods: dict[str, Method[Any, Any]] = {}
        self.inline: dict[str, Method[Any, Any]] = {}
        """The methods that never wait on I/O, by name (read it, do not change it): a
        dict rather than a method, as the server looks a name up in it on every call."""

    def add(
        self,
        name: str,
        request_type: type[Req],
        response_type: type[Resp],
        handler: Callable[[Req], Awaitable[Resp]],
        *,
        inline: bool = False,
        controllable: bool = True,
        decoder: Decoder[Req] | None = None,
        counted: Counted | None = None,
        now: Callable[[Req], Resp] | None = None,
    ) -> None:
        """Register ``handler`` under ``name``; ``decoder`` replaces the one made from
        ``request_type``'s fields (for a request whose fields are declared elsewhere)."""
        if name in self._methods:
            raise ValueError(f"method {name} registered twice")
        method = self._methods[name] = Method(
            name,
            handler,
            RequestDecoder(request_type) if decoder is None else decoder,
            ResponseEncoder(response_type),
            inline or now is not None,
            controllable,
            counted,
            now,
        )
        if method.inline:
            self.inline[name] = method

    def add_now(
        self,
        name: str,
        request_type: type[Req],
        response_type: type[Resp],
        handler: Callable[[Req], Resp],
        *,
        counted: Counted | None = None,
    ) -> None:
        """Register a method that never awaits (ListBuckets): answered inline, by the
        connection's reader, with no coroutine for the call (``Dispatcher.answer_now``)."""

        async def awaitable(request: Req) -> Resp:
            return handler(request)

        self.add(name, request_type, response_type, awaitable, counted=counted, now=handler)

    def get(self, name: str) -> Method[Any, Any] | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)

    def not_found(self, name: str) -> RPCError:
        # A name far longer than any method's is no typo of one (and difflib's
        # time grows with its length).
        close = (
            difflib.get_close_matches(name, self._methods, n=1, cutoff=0.6)
            if len(name) <= MAX_SUGGESTED_LENGTH
            else []
        )
        hint = f"did you mean {close[0]}?" if close else "available: " + ", ".join(self.names())
        shown = name if len(name) <= MAX_SUGGESTED_LENGTH else f"{name[:MAX_SUGGESTED_LENGTH]}..."
        return RPCError(ErrorCode.METHOD_NOT_FOUND, f"unknown method '{shown}'", hint)
