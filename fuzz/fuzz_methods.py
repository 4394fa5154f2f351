"""Fuzz target: every ``s3.*`` method's arguments, through the real dispatcher.

An input is ``[method selector][codec selector][argument body]``. The
dispatcher, the method registry and the storage code run unchanged; only the
storage boundary is fake (:class:`FuzzTransport` answers every S3 request at
once, as a service that holds no objects), and local files live under a
temporary root. Seeds are typed records of every method: each request
dataclass's fields filled with values of their type, edge values of it
(overflowing integers, invalid UTF-8, ``..`` segments, huge lengths) and values
of the wrong type, encoded as PHP would (JSON or msgpack).

The check: every call is answered with a frame for its seq (an answer or an
error), within a deadline, and no answer is ``INTERNAL_ERROR``: whatever a
caller sends, the error names what was wrong.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import random
import sys
import tempfile
import threading
import traceback
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import harness
import msgpack
import trio
from hypothesis import strategies as st

from trio_s3rpc.app import build_registry
from trio_s3rpc.config import parse_config
from trio_s3rpc.goridge.frame import (
    CODEC_JSON,
    CODEC_MSGPACK,
    FLAG_ERROR,
    FrameDecoder,
    RPCRequest,
    parse_rpc_request,
)
from trio_s3rpc.rpc.control import CallControl
from trio_s3rpc.rpc.decoding import Binary
from trio_s3rpc.rpc.dispatch import Dispatcher
from trio_s3rpc.rpc.methods import register_control_methods
from trio_s3rpc.rpc.registry import MethodRegistry
from trio_s3rpc.s3.transport import ResponseHeaders, S3Error, S3Response, S3Transport
from trio_s3rpc.storage.buckets import Storage
from trio_s3rpc.storage.chunked import ChunkedUploads
from trio_s3rpc.storage.files import Files

CODECS = (CODEC_JSON, CODEC_MSGPACK)
# A call answered later than this counts as hung (the fake service never waits).
CALL_DEADLINE = 10.0
ROOT = Path(tempfile.mkdtemp(prefix="fuzz-methods-"))
(ROOT / "source.txt").write_bytes(b"local file content")


def _xml(text: str) -> S3Response:
    body = b'<?xml version="1.0" encoding="UTF-8"?>' + text.encode()
    return S3Response(200, ResponseHeaders([(b"content-type", b"application/xml")]), body)


_ANSWERS: Mapping[str, Callable[[], S3Response]] = {
    "ListObjectsV2": lambda: _xml(
        "<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
        "</ListBucketResult>"
    ),
    "DeleteObjects": lambda: _xml("<DeleteResult></DeleteResult>"),
    "CreateMultipartUpload": lambda: _xml(
        "<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>"
    ),
    "CompleteMultipartUpload": lambda: _xml(
        '<CompleteMultipartUploadResult><ETag>"whole-2"</ETag></CompleteMultipartUploadResult>'
    ),
    "ListParts": lambda: _xml("<ListPartsResult><UploadId>up-1</UploadId></ListPartsResult>"),
    "CopyObject": lambda: _xml(
        '<CopyObjectResult><ETag>"copied"</ETag>'
        "<LastModified>2026-01-01T00:00:00.000Z</LastModified></CopyObjectResult>"
    ),
}
# Reads of an object: the fake service holds none.
_MISSING = frozenset({"HeadObject", "GetObject", "GetObjectAcl", "GetObjectTagging"})


class FuzzTransport(S3Transport):
    """``S3Transport`` without the network: every request answered at once, as by a
    service that holds no objects (signing and presigning are the real ones)."""

    async def request(  # type: ignore[override]
        self, operation: str, method: str, bucket: str, key: str | None = None, **options: Any
    ) -> S3Response:
        await trio.lowlevel.checkpoint()
        if operation in _MISSING:
            error = S3Error(operation, 404, "NoSuchKey", "The specified key does not exist.")
            if not options.get("raise_errors", True):
                return S3Response.failed(error)
            raise error
        answer = _ANSWERS.get(operation)
        if answer is not None:
            return answer()
        return S3Response(200, ResponseHeaders([(b"etag", b'"e"')]), b"")

    def stream(  # type: ignore[override]
        self, operation: str, method: str, bucket: str, key: str | None = None, **_: Any
    ) -> _MissingStream:
        return _MissingStream(operation)


class _MissingStream:
    def __init__(self, operation: str) -> None:
        self.operation = operation

    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint()
        raise S3Error(self.operation, 404, "NoSuchKey", "The specified key does not exist.")

    async def __aexit__(self, *exc_info: object) -> None:
        pass


def _config() -> Any:
    return parse_config(
        {
            "s3": {
                "default": "uploads",
                "local_roots": [str(ROOT)],
                "servers": {
                    "fake": {
                        "region": "us-east-1",
                        "endpoint": "http://127.0.0.1:9",
                        "credentials": {"key": "k", "secret": "s"},
                    }
                },
                "buckets": {
                    "uploads": {
                        "server": "fake",
                        "bucket": "fuzz-bucket",
                        "visibility_mode": "none",
                    },
                    "public": {
                        "server": "fake",
                        "bucket": "public-bucket",
                        "prefix": "pre/",
                        "public_url": "https://cdn.example.com/",
                    },
                },
            }
        },
        source="fuzz",
    )


class _Service:
    """The dispatcher and its storage on a trio loop of their own, in a thread."""

    def __init__(self) -> None:
        config = _config()
        self.storage = Storage(config.s3)
        # RegisterBucket takes its buckets' transports from here, as the configured ones.
        for name, server in config.s3.servers.items():
            self.storage._transports[name] = FuzzTransport(server, max_connections=10)
        for bucket in self.storage.buckets.values():
            bucket.transport = self.storage._transports[bucket.server.name]
        self.uploads = ChunkedUploads(self.storage, 60.0)
        self.registry: MethodRegistry = build_registry(
            self.storage, Files(config.s3.local_roots), self.uploads
        )
        control = CallControl()
        register_control_methods(self.registry, control)
        self.dispatcher = Dispatcher(self.registry, control)
        self.names = self.registry.names()
        started = threading.Event()
        self.token: trio.lowlevel.TrioToken | None = None
        threading.Thread(target=trio.run, args=(self._loop, started), daemon=True).start()
        started.wait()

    async def _loop(self, started: threading.Event) -> None:
        self.token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.uploads.run)
            started.set()
            await trio.sleep_forever()

    def call(self, request: RPCRequest) -> bytes | None:
        async def answer() -> bytes | None:
            with trio.move_on_after(CALL_DEADLINE):
                return await self.dispatcher.answer(request)
            return None

        return trio.from_thread.run(answer, trio_token=self.token)


class _LastError(logging.Handler):
    """Keeps the traceback of the last INTERNAL_ERROR logged, for the failure report."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.text = "".join(traceback.format_exception(*record.exc_info))


SERVICE = _Service()
LAST_ERROR = _LastError()
_logger = logging.getLogger("trio_s3rpc")
_logger.addHandler(LAST_ERROR)
_logger.propagate = False  # the expected refusals are logged too; only the checks count


# A method selector of this value takes the name from the input's own bytes.
RAW_NAME = 0xFF


def fuzz_one(data: bytes) -> None:
    if len(data) < 2:
        return
    codec = CODECS[data[1] % len(CODECS)]
    body = data[2:]
    if data[0] == RAW_NAME:
        # Any bytes as the name, as parse_rpc_request gives them (not UTF-8 included).
        length = data[1] % 40
        method = body[:length].decode("utf-8", "surrogateescape")
        body = body[length:]
    else:
        method = SERVICE.names[data[0] % len(SERVICE.names)]
    request = RPCRequest(seq=7, method=method, codec=codec, body=body)
    frame = SERVICE.call(request)
    assert frame is not None, f"{method} did not answer within {CALL_DEADLINE} s"
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    answer = decoder.next_frame()
    assert answer is not None and decoder.next_frame() is None
    parsed = parse_rpc_request(answer)
    assert parsed.seq == 7 and parsed.method == method
    if answer.flags & FLAG_ERROR:
        text = parsed.body.decode("utf-8")
        assert not text.startswith("INTERNAL_ERROR"), f"{method}: {text}\n{LAST_ERROR.text}"
        assert ": " in text, f"{method}: an error without a code: {text}"


# -- typed records -------------------------------------------------------------------

_STRINGS = (
    "", "a.txt", "dir/ü.txt", "../x", "a/../../b", "/abs", "./a", "a//b", " ", "\x00",
    "\r\nX-Injected: 1", "%2e%2e/x", "CON", ".", "x" * 1100, "uploads", "public", "nope",
    "fake", "public-read", "private", "none", "acl", "STANDARD", "AES256", "aws:kms",
    "https://cdn.example.com/", "a\udcff", "\ud800", "\u202e", "*", "?", "1e11",
    str(ROOT / "source.txt"), str(ROOT / "out.bin"), str(ROOT), "/etc/passwd",
    str(ROOT / "../escape"), "inline; filename=\"a.txt\"", "text/plain",
)  # fmt: skip
_INTEGERS = (
    0, 1, -1, 7, 1000, 1001, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -(2**63),
    2**64, 10**11, 10**12, 10**18, 10**20, 5 * 2**30, 5 * 2**40, 253402300800, -(10**11),
)  # fmt: skip
_FLOATS = (0.0, -1.0, 0.5, 1e11, 1e308, -1e308, 1e-320, 2.0**63, 3.7)


def _value(hint: Any, rng: random.Random) -> Any:
    """A value for a field of type ``hint``: mostly of its type, sometimes not."""
    roll = rng.random()
    if roll < 0.08:
        return rng.choice([None, True, "str", 3, -2.5, [], {}, ["a"], {"k": "v"}, b"\xff"])
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is Binary:
        return rng.choice([b"", b"x", rng.randbytes(rng.randrange(1, 64)), b"\x00" * 300])
    if hint is str:
        return rng.choice(_STRINGS)
    if hint is bool:
        return rng.random() < 0.5
    if hint is int:
        return rng.choice(_INTEGERS) if rng.random() < 0.8 else rng.choice(_FLOATS)
    if hint is float:
        return rng.choice((*_FLOATS, 1, 0, 10**20))
    if origin is dict:
        size = rng.choice([0, 1, 2, 5])
        return {rng.choice(_STRINGS): rng.choice((*_STRINGS, "")) for _ in range(size)}
    if origin is list:
        return [rng.choice(_STRINGS) for _ in range(rng.choice([0, 1, 3, 1001]))]
    return None


def record(method: str, rng: random.Random) -> dict[str, Any]:
    """A typed record of ``method``'s request: each field present, absent, or odd."""
    request_type = SERVICE.registry.get(method).decoder.request_type  # type: ignore[union-attr]
    hints = typing.get_type_hints(request_type)
    args: dict[str, Any] = {}
    for item in dataclasses.fields(request_type):
        if rng.random() < 0.15:
            continue
        args[item.name] = _value(hints[item.name], rng)
    if rng.random() < 0.05:
        args[rng.choice(["transfer_id", "timeout"])] = rng.choice(["t-1", 0, -1, 1e11, "x"])
    if rng.random() < 0.05:
        args["unexpected"] = rng.choice(_STRINGS)
    return args


def _encodable(value: Any, codec: int) -> Any:
    """``value`` as the codec can carry it: base64 bytes under JSON; under msgpack, an
    integer past its 64 bits goes as a float (PHP's own overflow)."""
    if isinstance(value, bytes) and codec == CODEC_JSON:
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and codec == CODEC_MSGPACK and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, dict):
        return {key: _encodable(item, codec) for key, item in value.items()}
    if isinstance(value, list):
        return [_encodable(item, codec) for item in value]
    return value


def encode(method: str, codec: int, args: Mapping[str, Any]) -> bytes:
    """The input for a call: selectors, then the argument as PHP would encode it."""
    if codec == CODEC_JSON:
        text = json.dumps(_encodable(args, codec), ensure_ascii=False)
        body = text.encode("utf-8", "surrogatepass")
    else:
        packed = _encodable(args, codec)
        body = msgpack.packb(packed, use_bin_type=True, unicode_errors="surrogatepass")
    return bytes([SERVICE.names.index(method), CODECS.index(codec)]) + body


def typed_input(rng: random.Random) -> bytes:
    method = rng.choice(SERVICE.names)
    return encode(method, rng.choice(CODECS), record(method, rng))


def seeds() -> list[bytes]:
    rng = random.Random(22)
    found = [
        bytes([RAW_NAME, 14]) + b"s3.ListBuckets[]",
        bytes([RAW_NAME, 15]) + b"s3.List\xffBuckets[]",
        bytes([RAW_NAME, 5]) + b"s3.\xc3\xa9{}",
        bytes([RAW_NAME, 39]) + b"s3.ReadFile" + b"\xed\xa0\x80" * 9 + b"{}",
    ]
    for method in SERVICE.names:
        for codec in CODECS:
            for _ in range(8):
                found.append(encode(method, codec, record(method, rng)))
    return found


TARGET = harness.Target(
    name="fuzz_methods",
    fuzz_one=fuzz_one,
    expected=(),
    seeds=seeds(),
    generate=typed_input,
    extra=st.randoms(use_true_random=False).map(typed_input),
)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
