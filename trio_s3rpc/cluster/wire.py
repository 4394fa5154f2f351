"""Requests between the processes of one service, over unix sockets in a private run dir.

Each process that answers (the supervisor, every worker) listens on its own
socket in the run directory, which only the service's user may enter. A
request is one JSON object, sent with a 4-byte big-endian length; the answer
is one too, then the connection closes. These are rare calls (a bucket
registered, a transfer looked up elsewhere), so one connection per request
keeps both ends simple and a dead peer is just a refused connect.

Every request and answer is a record declared here, decoded by the same
decoder as RPC arguments (``rpc/decoding.py``), so a message a peer got wrong
is refused naming the field. A request is ``{"op": ..., <its fields>}``; an
answer is ``{"ok": true, <its fields>}`` or ``{"ok": false, "code", "message",
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
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import trio

from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.rpc.decoding import RequestDecoder
from trio_s3rpc.rpc.typed import CancelResponse, TransferStatusResponse

log = logging.getLogger("trio_s3rpc.cluster")

MAX_MESSAGE = 16 * 1024 * 1024
ASK_TIMEOUT = 10.0

Message = dict[str, Any]
A = TypeVar("A")

# -- the messages ------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Registration:
    """A bucket registered by ``s3.RegisterBucket``: its name and settings."""

    name: str
    settings: dict[str, str | int]


@dataclass(slots=True, frozen=True)
class Hello:
    """A worker joins the service (to the supervisor): answered with :class:`Joined`."""

    slot: int


@dataclass(slots=True, frozen=True)
class Joined:
    """The buckets registered so far, in order."""

    buckets: list[Registration]


@dataclass(slots=True, frozen=True)
class Ready:
    """A worker serves (to the supervisor)."""

    slot: int
    pid: int
    address: str


class RegisterBucket(Registration):
    """Register a bucket on every worker (to the supervisor)."""

    __slots__ = ()


class ApplyBucket(Registration):
    """Register a bucket here (to a worker, from the supervisor)."""

    __slots__ = ()


@dataclass(slots=True, frozen=True)
class TransferStatusQuery:
    """Is this transfer running on you (to a worker)? Answered with :class:`Found`."""

    transfer_id: str


@dataclass(slots=True, frozen=True)
class CancelQuery:
    """Cancel this transfer if it runs on you (to a worker): :class:`Found`."""

    transfer_id: str


@dataclass(slots=True, frozen=True)
class Found:
    """A transfer query's answer: the worker's TransferStatus or Cancel answer when the
    transfer runs there, else neither."""

    status: TransferStatusResponse | None = None
    cancelled: CancelResponse | None = None


@dataclass(slots=True, frozen=True)
class ActiveUploadsQuery:
    """Which multipart uploads do you work on (to a worker)? :class:`ActiveUploads`."""


@dataclass(slots=True, frozen=True)
class BeingCreated:
    """An upload whose CreateMultipartUpload is sent and not yet answered."""

    bucket: str
    key: str


@dataclass(slots=True, frozen=True)
class ActiveUploads:
    upload_ids: list[str]
    # Their ids not known yet. Absent from a worker of before 0.2.0: none.
    creating: list[BeingCreated] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class Done:
    """The answer of a request that needs none but its success."""


#: Each request's ``op`` on the wire.
OPS: dict[str, type] = {
    "hello": Hello,
    "ready": Ready,
    "register_bucket": RegisterBucket,
    "apply_bucket": ApplyBucket,
    "transfer_status": TransferStatusQuery,
    "cancel": CancelQuery,
    "active_uploads": ActiveUploadsQuery,
}
_OP_OF = {kind: op for op, kind in OPS.items()}
_decoders: dict[type, RequestDecoder[Any]] = {}

Handler = Callable[[Any], Awaitable[Any]]


def _decode(kind: type[A], payload: Message) -> A:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = RequestDecoder(kind)
    decoded: A = decoder.decode(payload, True)
    return decoded


def decode_request(payload: Message) -> Any:
    """The request record a payload carries; INVALID_REQUEST naming what is wrong."""
    op = payload.get("op")
    kind = OPS.get(op) if isinstance(op, str) else None
    if kind is None:
        raise RPCError(ErrorCode.INVALID_REQUEST, f"unknown peer request {op!r}")
    return _decode(kind, payload)


def encode_request(request: Any) -> Message:
    return {"op": _OP_OF[type(request)], **asdict(request)}


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


async def ask(path: str, request: Any, answer: type[A], *, seconds: float = ASK_TIMEOUT) -> A:
    """Send one request record to the process listening on ``path``; its answer, as ``answer``.

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
                await send_message(stream, encode_request(request))
                reply = await receive_message(stream)
            except (trio.BrokenResourceError, OSError) as exc:
                raise PeerUnavailable(f"{path}: {exc}") from None
    if scope.cancelled_caught:
        raise PeerTimeout(f"{path} did not answer within {seconds:g} s")
    if not reply.get("ok"):
        raise RPCError(
            ErrorCode.__members__.get(str(reply.get("code")), ErrorCode.INTERNAL_ERROR),
            str(reply.get("message", "a peer process failed the request")),
            str(reply.get("details", "")),
        )
    return _decode(answer, reply)


def error_answer(exc: RPCError) -> Message:
    return {"ok": False, "code": exc.code.name, "message": exc.message, "details": exc.details}


async def serve(
    path: str, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Answer requests on ``path`` with ``handler`` until cancelled; one task per request.

    ``handler`` takes a request record (one of :data:`OPS`' types) and returns
    its answer record.

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
            answer = {"ok": True, **asdict(await handler(decode_request(request)))}
        except RPCError as exc:
            answer = error_answer(exc)
        except Exception as exc:  # a bug: say so, never crash the service's listener
            log.exception("event=peer_request_failed op=%s", request.get("op"))
            answer = error_answer(
                RPCError(ErrorCode.INTERNAL_ERROR, f"a peer process failed: {exc!r}")
            )
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await send_message(stream, answer)
