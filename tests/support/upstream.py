"""A second Goridge RPC server standing in for RoadRunner's own RPC, for relay tests.

Built from the project's own RPC code (``RPCServer`` with a dispatcher of its
own), it serves a service other than ``s3``, as RoadRunner's ``informer`` or
``jobs`` would:

- ``echo.Echo`` answers the argument bytes exactly as received, in any codec;
- ``echo.Sleep`` answers them after ``seconds`` (a JSON or msgpack field);
- ``echo.Fail`` answers an error frame;
- ``echo.Hang`` never answers.

It records every request as it arrived and every answer frame as it left,
so a test can check that the relay changed nothing but ``seq``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from trio_s3rpc.config import RPCSettings, parse_listen
from trio_s3rpc.goridge.codecs import decode_args
from trio_s3rpc.goridge.frame import RPCRequest, encode_rpc_error, encode_rpc_response
from trio_s3rpc.rpc.dispatch import Dispatcher
from trio_s3rpc.rpc.registry import Method, MethodRegistry
from trio_s3rpc.rpc.server import RPCServer

FAIL_MESSAGE = "echo failed on purpose"


class EchoDispatcher(Dispatcher):
    """Answers the ``echo`` service; records what it received and sent."""

    def __init__(self) -> None:
        super().__init__(MethodRegistry())
        self.received: list[RPCRequest] = []
        self.sent: dict[int, bytes] = {}  # upstream seq -> answer frame as written
        self.in_progress = 0

    async def answer(self, request: RPCRequest, method: Method[Any, Any] | None = None) -> bytes:
        self.received.append(request)
        self.in_progress += 1
        try:
            if request.method == "echo.Hang":
                await trio.sleep_forever()
            if request.method == "echo.Sleep":
                await trio.sleep(float(decode_args(request.codec, request.body)["seconds"]))
            if request.method == "echo.Fail":
                frame = encode_rpc_error(request.seq, request.method, request.codec, FAIL_MESSAGE)
            else:
                frame = encode_rpc_response(
                    request.seq, request.method, request.codec, request.body
                )
        finally:
            self.in_progress -= 1
        self.sent[request.seq] = frame
        return frame


@dataclass(slots=True)
class Upstream:
    server: RPCServer
    dispatcher: EchoDispatcher
    address: str = ""
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def crash(self) -> None:
        """Stop at once, as a killed process: connections close, calls unanswered."""
        self.scope.cancel()


@asynccontextmanager
async def running_upstream(listen: str = "tcp://127.0.0.1:0") -> AsyncIterator[Upstream]:
    """Serve the echo service on ``listen``; stop it (gracefully, at once) on exit."""
    dispatcher = EchoDispatcher()
    server = RPCServer(RPCSettings(parse_listen(listen)), dispatcher, shutdown_timeout=0.2)
    upstream = Upstream(server, dispatcher)

    async def serve(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
        with upstream.scope:
            await server.serve(task_status=task_status)

    async with trio.open_nursery() as nursery:
        upstream.address = str(await nursery.start(serve))
        try:
            yield upstream
        finally:
            server.request_shutdown()
