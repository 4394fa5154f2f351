"""The method registry and the dispatcher that answers one RPC request.

A method is a name, a request dataclass, a response dataclass and an async
handler. The dispatcher turns a parsed request frame into an answer frame:
it finds the method, decodes the argument with the frame's codec, builds the
typed request, awaits the handler (under the call's ``timeout`` and
``transfer_id`` when it carries them) and encodes the answer. Every failure that
is not cancellation becomes an error frame; unexpected exceptions are logged
with an incident id and answered as ``INTERNAL_ERROR``, never a traceback.
With metrics on, each call's outcome and time are counted once it is answered.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Awaitable, Callable
from functools import partial
from time import perf_counter
from typing import Any, Generic, TypeVar

from trio_s3rpc.errors import ErrorCode, RPCError, internal_error
from trio_s3rpc.goridge.codecs import BINARY_AS_BASE64, CodecError, decode_args, encode_result
from trio_s3rpc.goridge.frame import RPCRequest, encode_rpc_error, encode_rpc_response
from trio_s3rpc.metrics import CallMetrics, CallRecord, abandoned_error
from trio_s3rpc.rpc.control import CallControl, call_options
from trio_s3rpc.rpc.typed import RequestDecoder, ResponseEncoder

Req = TypeVar("Req")
Resp = TypeVar("Resp")


@dataclasses.dataclass(slots=True, frozen=True)
class Method(Generic[Req, Resp]):
    name: str
    handler: Callable[[Req], Awaitable[Resp]]
    decoder: RequestDecoder[Req]
    encoder: ResponseEncoder
    # True for methods that never wait on I/O (answered without a task of their own).
    inline: bool = False
    # False for methods whose own fields are named transfer_id/timeout (s3.Cancel).
    controllable: bool = True


class MethodRegistry:
    """Methods by their full wire name (``s3.Write``)."""

    def __init__(self) -> None:
        self._methods: dict[str, Method[Any, Any]] = {}

    def add(
        self,
        name: str,
        request_type: type[Req],
        response_type: type[Resp],
        handler: Callable[[Req], Awaitable[Resp]],
        *,
        inline: bool = False,
        controllable: bool = True,
    ) -> None:
        if name in self._methods:
            raise ValueError(f"method {name} registered twice")
        self._methods[name] = Method(
            name,
            handler,
            RequestDecoder(request_type),
            ResponseEncoder(response_type),
            inline,
            controllable,
        )

    def get(self, name: str) -> Method[Any, Any] | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)

    def not_found(self, name: str) -> RPCError:
        close = difflib.get_close_matches(name, self._methods, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "available: " + ", ".join(self.names())
        return RPCError(ErrorCode.METHOD_NOT_FOUND, f"unknown method '{name}'", hint)


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

    def is_inline(self, name: str) -> bool:
        method = self.registry.get(name)
        return method is not None and method.inline

    async def answer(self, request: RPCRequest) -> bytes:
        """Run the request's method and return the whole answer frame.

        Cancellation propagates (the caller decides whether anything is sent);
        every other outcome is an answer frame. With ``metrics`` set, every
        outcome (cancellation too) is counted.
        """
        metrics = self.metrics
        if metrics is None:
            return await self._answer(request, None)
        record = CallRecord()
        started = perf_counter()
        try:
            frame = await self._answer(request, record)
        except BaseException:
            metrics.finished(request.method, record, abandoned_error(), perf_counter() - started)
            raise
        metrics.finished(request.method, record, record.error, perf_counter() - started)
        return frame

    async def _answer(self, request: RPCRequest, record: CallRecord | None) -> bytes:
        try:
            body = await self._call(request, record)
        except RPCError as exc:
            if record is not None:
                record.error = exc
            return encode_rpc_error(request.seq, request.method, request.codec, exc.wire_text())
        except Exception as exc:  # a bug: logged with an id, answered without a traceback
            error = internal_error(exc, f"method={request.method}")
            if record is not None:
                record.error = error
            return encode_rpc_error(request.seq, request.method, request.codec, error.wire_text())
        return encode_rpc_response(request.seq, request.method, request.codec, body)

    async def _call(self, request: RPCRequest, record: CallRecord | None) -> bytes:
        method = self.registry.get(request.method)
        if method is None:
            raise self.registry.not_found(request.method)
        try:
            args = decode_args(request.codec, request.body)
        except CodecError as exc:
            raise RPCError(ErrorCode.INVALID_REQUEST, f"cannot decode arguments: {exc}") from None
        if record is not None:
            record.args = args
        typed = method.decoder.decode(args, request.codec in BINARY_AS_BASE64)
        if method.controllable and ("transfer_id" in args or "timeout" in args):
            transfer_id, timeout = call_options(args)
            response = await self.control.run(
                request.method, transfer_id, timeout, partial(method.handler, typed)
            )
        else:
            response = await method.handler(typed)
        if record is not None:
            record.request = typed
            record.response = response
        return encode_result(request.codec, method.encoder.encode(response))
