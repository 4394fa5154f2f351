"""Requests between the processes of one service, over unix sockets in a private run dir.

Each process that answers (the supervisor, every worker) listens on its own
socket in the run directory, which only the service's user may enter. A
request is one JSON object, sent with a 4-byte big-endian length; the answer
is one too, then the connection closes. These are rare calls (a bucket
registered, a transfer looked up elsewhere), so one connection per request
keeps both ends simple and a dead peer is just a refused connect.

An answer is ``{"ok": true, ...}`` or ``{"ok": false, "code", "message",
"details"}``, which :func:`ask` raises as the :class:`RPCError` it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket as stdlib_socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trio_s3rpc.errors import ErrorCode, RPCError

log = logging.getLogger("trio_s3rpc.cluster")

MAX_MESSAGE = 16 * 1024 * 1024
ASK_TIMEOUT = 10.0

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[Message]]


class PeerUnavailable(Exception):
    """The peer's socket is absent, refuses, or did not answer in time."""


class PeerTimeout(PeerUnavailable):
    """The peer accepted the request but did not answer in time: it may be running."""


async def _receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise PeerUnavailable("the peer closed the connection mid-message")
        data += chunk
    return bytes(data)


async def send_message(stream: trio.SocketStream, message: Message) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    await stream.send_all(struct.pack(">I", len(body)) + body)


async def receive_message(stream: trio.SocketStream) -> Message:
    (size,) = struct.unpack(">I", await _receive_exactly(stream, 4))
    if size > MAX_MESSAGE:
        raise PeerUnavailable(f"a message of {size} bytes is larger than allowed")
    message = json.loads(await _receive_exactly(stream, size))
    if not isinstance(message, dict):
        raise PeerUnavailable("a message is not a JSON object")
    return message


async def ask(path: str, message: Message, *, seconds: float = ASK_TIMEOUT) -> Message:
    """Send one request to the process listening on ``path``; answer its reply.

    Raises :class:`PeerUnavailable` when nobody answers, and the peer's own
    :class:`RPCError` when it refused the request.
    """
    with trio.move_on_after(seconds) as scope:
        try:
            stream = await trio.open_unix_socket(path)
        except OSError as exc:
            raise PeerUnavailable(f"cannot reach {path}: {exc.strerror or exc}") from None
        async with stream:
            try:
                await send_message(stream, message)
                answer = await receive_message(stream)
            except (trio.BrokenResourceError, OSError) as exc:
                raise PeerUnavailable(f"{path}: {exc}") from None
    if scope.cancelled_caught:
        raise PeerTimeout(f"{path} did not answer within {seconds:g} s")
    if not answer.get("ok"):
        raise RPCError(
            ErrorCode.__members__.get(str(answer.get("code")), ErrorCode.INTERNAL_ERROR),
            str(answer.get("message", "a peer process failed the request")),
            str(answer.get("details", "")),
        )
    return answer


def error_answer(exc: RPCError) -> Message:
    return {"ok": False, "code": exc.code.name, "message": exc.message, "details": exc.details}


async def serve(
    path: str, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Answer requests on ``path`` with ``handler`` until cancelled; one task per request.

    A stale socket file (a dead process of the same slot) is replaced. The
    file is removed on the way out.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(64)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                stream = await listener.accept()
                nursery.start_soon(_answer_one, stream, handler)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with trio.CancelScope(shield=True):
            await listener.aclose()


async def _answer_one(stream: trio.SocketStream, handler: Handler) -> None:
    async with stream:
        try:
            request = await receive_message(stream)
        except (PeerUnavailable, trio.BrokenResourceError, ValueError) as exc:
            log.warning("event=peer_request_unreadable error=%r", str(exc))
            return
        try:
            answer = {"ok": True, **await handler(request)}
        except RPCError as exc:
            answer = error_answer(exc)
        except Exception as exc:  # a bug: say so, never crash the service's listener
            log.exception("event=peer_request_failed op=%s", request.get("op"))
            answer = error_answer(
                RPCError(ErrorCode.INTERNAL_ERROR, f"a peer process failed: {exc!r}")
            )
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await send_message(stream, answer)
