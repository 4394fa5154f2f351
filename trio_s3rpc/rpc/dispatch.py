"""The dispatcher: one parsed RPC request in, one answer frame out.

It finds the method in the registry, decodes the argument with the frame's
codec, builds the typed request, awaits the handler (under the call's
``timeout`` and ``transfer_id`` when it carries them, through
``control.py``) and encodes the answer. Every failure that is not
cancellation becomes an error frame; unexpected exceptions are logged with
an incident id and answered as ``INTERNAL_ERROR``, never a traceback.
With metrics on, each call's outcome and time are counted once it is answered.
A large argument (see :func:`_large`) is counted (``goridge/bounds.py``),
decoded and typed in a worker thread, and its answer encoded there in small
pieces, so the event loop keeps serving other calls.
"""

from __future__ import annotations

from functools import partial
from time import perf_counter
from typing import Any

import trio

from trio_s3rpc.errors import ErrorCode, RPCError, internal_error
from trio_s3rpc.goridge.bounds import check_counts, holds_many
from trio_s3rpc.goridge.codecs import (
    BINARY_AS_BASE64,
    CodecError,
    decode_args,
    encode_result,
    encode_result_in_pieces,
)
from trio_s3rpc.goridge.frame import RPCRequest, encode_rpc_error, encode_rpc_response
from trio_s3rpc.metrics import CallMetrics, CallRecord, abandoned_error
from trio_s3rpc.rpc.control import CallControl, call_options
from trio_s3rpc.rpc.registry import Method, MethodRegistry

# Arguments from this size on that hold many values, and all from MANY_BYTES on,
# are decoded (and their answers encoded) in a worker thread: milliseconds of work
# or more, which the event loop must not wait on. A Write's content alone is one
# value, cheaper to decode here than a thread's hand-off.
LARGE_ARGUMENT = 64 * 1024
MANY_VALUES = 2000
MANY_BYTES = 1024 * 1024
DECODING_THREADS = 2


def _large(request: RPCRequest) -> bool:
    """Whether an argument of at least LARGE_ARGUMENT bytes is worth a worker thread
    (the caller compares the size first, so a small call pays no function call)."""
    return len(request.body) >= MANY_BYTES or holds_many(request.codec, request.body, MANY_VALUES)


class Dispatcher:
    """Answers parsed RPC requests with encoded answer frames."""

    def __init__(
        self,
        registry: MethodRegistry,
        control: CallControl | None = None,
        metrics: CallMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.control = control or CallControl()
        self.metrics = metrics
        # Worker threads for large arguments: they share one interpreter lock, so
        # a few suffice, and more would only hold more frames decoded at once.
        self._threads = trio.CapacityLimiter(DECODING_THREADS)

    def inline_method(self, name: str) -> Method[Any, Any] | None:
        """The method of this name if it never waits on I/O (for :meth:`answer`)."""
        return self.registry.inline.get(name)

    async def answer(
        self,
        request: RPCRequest,
        method: Method[Any, Any] | None = None,
        record: CallRecord | None = None,
    ) -> bytes:
        """Run the request's method and return the whole answer frame.

        Cancellation propagates (the caller decides whether anything is sent);
        every other outcome is an answer frame. With ``metrics`` set, every
        outcome (cancellation too) is counted. ``method``: the request's, when
        the caller looked it up already; ``record``: the metrics' record of the
        call (given only by :meth:`_counted`, which fills it in).

        One coroutine from the argument's bytes to the answer's when nothing is
        counted: each level of await costs every call a coroutine and a frame.
        """
        if record is None and self.metrics is not None:
            return await self._counted(request, method)
        try:
            if method is None:
                method = self.registry.get(request.method)
                if method is None:
                    raise _invalid_name(request.method) or self.registry.not_found(request.method)
            large = len(request.body) >= LARGE_ARGUMENT and _large(request)
            if large:
                args, typed = await trio.to_thread.run_sync(
                    _decode_large, method, request, record, limiter=self._threads
                )
            else:
                args, typed = _decode_small(method, request, record)
            options = None
            if method.controllable and ("transfer_id" in args or "timeout" in args):
                options = call_options(args)
            # Not kept while the handler runs: under JSON it holds a byte field's base64
            # text, as large as the call (an UploadChunk's 5.3 MiB for 4 MiB of content).
            del args
            if options is not None:
                transfer_id, timeout = options
                response = await self.control.run(
                    request.method, transfer_id, timeout, partial(method.handler, typed)
                )
            else:
                response = await method.handler(typed)
            if record is not None:
                record.request = typed
                record.response = response
            if large:
                # A large argument tends to a large answer (DeleteMany's errors).
                body = await trio.to_thread.run_sync(
                    _encode_in_pieces, method, request.codec, response, limiter=self._threads
                )
            else:
                body = encode_result(request.codec, method.encoder.encode(response))
        except Exception as exc:
            return _error_answer(request, exc, record)
        return encode_rpc_response(request.seq, request.method, request.codec, body)

    def answer_now(
        self, request: RPCRequest, method: Method[Any, Any], record: CallRecord | None = None
    ) -> bytes | None:
        """:meth:`answer` for a method registered with ``add_now``, with no coroutine:
        the answer frame, or None for a call that carries ``transfer_id`` or ``timeout``
        (only :meth:`answer` runs a call under :class:`CallControl`)."""
        if record is None and self.metrics is not None:
            return self._counted_now(request, method)
        now = method.now
        assert now is not None
        try:
            args, typed = _decode_small(method, request, record)
            if method.controllable and ("transfer_id" in args or "timeout" in args):
                return None
            response = now(typed)
            if record is not None:
                record.request = typed
                record.response = response
            body = encode_result(request.codec, method.encoder.encode(response))
        except Exception as exc:
            return _error_answer(request, exc, record)
        return encode_rpc_response(request.seq, request.method, request.codec, body)

    def _counted_now(self, request: RPCRequest, method: Method[Any, Any]) -> bytes | None:
        metrics = self.metrics
        assert metrics is not None
        record = CallRecord()
        started = perf_counter()
        frame = self.answer_now(request, method, record)
        if frame is not None:  # else counted by answer(), which runs it
            metrics.finished(request.method, record, record.error, perf_counter() - started)
        return frame

    async def _counted(self, request: RPCRequest, method: Method[Any, Any] | None) -> bytes:
        metrics = self.metrics
        assert metrics is not None
        record = CallRecord()
        started = perf_counter()
        try:
            frame = await self.answer(request, method, record)
        except BaseException:
            metrics.finished(request.method, record, abandoned_error(), perf_counter() - started)
            raise
        metrics.finished(request.method, record, record.error, perf_counter() - started)
        return frame


def _decode_small(
    method: Method[Any, Any], request: RPCRequest, record: CallRecord | None
) -> tuple[dict[str, Any], Any]:
    """An argument (``record.args`` too, for the metrics) and its typed request."""
    try:
        args = decode_args(request.codec, request.body, method.decoder.binary_fields)
    except CodecError as exc:
        raise _undecodable(exc) from None
    if record is not None:
        record.args = args
    return args, method.decoder.decode(args, request.codec in BINARY_AS_BASE64)


def _error_answer(request: RPCRequest, exc: Exception, record: CallRecord | None) -> bytes:
    """The error frame for a call that raised: its RPCError, or INTERNAL_ERROR for a bug
    (logged with an incident id, answered without a traceback)."""
    error = exc if isinstance(exc, RPCError) else internal_error(exc, f"method={request.method}")
    if record is not None:
        record.error = error
    return encode_rpc_error(request.seq, request.method, request.codec, error.wire_text())


def _invalid_name(name: str) -> RPCError | None:
    """The error for a method name that is not UTF-8 (its bytes came as surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = name.encode("utf-8", "surrogateescape")
        at = len(name[: exc.start].encode("utf-8", "surrogateescape"))
        return RPCError(
            ErrorCode.INVALID_REQUEST,
            "the method name is not valid UTF-8",
            f"byte {at} of {raw[:80]!r}",
        )
    return None


def _undecodable(exc: CodecError) -> RPCError:
    return RPCError(ErrorCode.INVALID_REQUEST, f"cannot decode arguments: {exc}")


def _decode_large(
    method: Method[Any, Any], request: RPCRequest, record: CallRecord | None
) -> tuple[dict[str, Any], Any]:
    """A large argument (``record.args`` too, for the metrics) and its typed request, in
    a worker thread: counted first (a small one cannot hold too many values), then
    decoded as :meth:`Dispatcher.answer` decodes a small one."""
    try:
        check_counts(request.codec, request.body)
    except CodecError as exc:
        raise _undecodable(exc) from None
    return _decode_small(method, request, record)


def _encode_in_pieces(method: Method[Any, Any], codec: int, response: Any) -> bytes:
    return encode_result_in_pieces(codec, method.encoder.encode(response))
