"""S3Transport: addressing, retries and error mapping against a scripted HTTP server,
then the real thing against SeaweedFS."""

from __future__ import annotations

import base64
import functools
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.support.http import read_body, read_head
from tests.support.services import free_port
from trio_s3rpc import checksums
from trio_s3rpc.config import Credentials, ServerConfig
from trio_s3rpc.s3 import multipart
from trio_s3rpc.s3 import transport as transport_module
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.s3.failures import RETRY_MAX_DELAY
from trio_s3rpc.s3.responses import ResponseHeaders
from trio_s3rpc.s3.transport import (
    S3Error,
    S3Transport,
    backoff_delay,
    retry_schedule,
)

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def server_config(
    endpoint: str,
    *,
    key: str = "AK",
    secret: str = SECRET,
    token: str = "",
    region: str = "us-east-1",
    force_path_style: bool | None = None,
    checksums: str = "when_required",
) -> ServerConfig:
    return ServerConfig(
        name="test",
        region=region,
        endpoint=endpoint,
        credentials=Credentials(key=key, secret=secret, token=token),
        force_path_style=force_path_style,
        checksums=checksums,
    )


def error_xml(code: str, message: str = "try again") -> bytes:
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


# --- backoff --------------------------------------------------------------


def test_backoff_uses_equal_jitter_and_a_cap() -> None:
    assert [backoff_delay(retry, rng=lambda: 0.0) for retry in range(6)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
        1.0,
    ]
    assert [backoff_delay(retry, rng=lambda: 1.0) for retry in range(6)] == [
        0.2,
        0.4,
        0.8,
        1.6,
        2.0,
        2.0,
    ]
    assert backoff_delay(30, rng=lambda: 1.0) == RETRY_MAX_DELAY


def test_default_schedule_spans_several_seconds() -> None:
    shortest = sum(retry_schedule(5, rng=lambda: 0.0))
    longest = sum(retry_schedule(5, rng=lambda: 1.0))
    assert 2.0 < shortest <= longest <= 6.0
    assert min(retry_schedule(5)) >= 0.1
    assert retry_schedule(0) == []


# --- addressing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "bucket", "key", "url"),
    [
        (server_config("http://127.0.0.1:9000"), "b", "a b/c", "http://127.0.0.1:9000/b/a%20b/c"),
        (server_config("http://127.0.0.1:9000/"), "b", None, "http://127.0.0.1:9000/b"),
        (
            server_config("", region="eu-west-3"),
            "my-bucket",
            "k+1",
            "https://my-bucket.s3.eu-west-3.amazonaws.com/k%2B1",
        ),
        (
            server_config("", region="eu-west-3"),
            "my-bucket",
            None,
            "https://my-bucket.s3.eu-west-3.amazonaws.com/",
        ),
        (
            server_config("", force_path_style=True),
            "my-bucket",
            "k",
            "https://s3.us-east-1.amazonaws.com/my-bucket/k",
        ),
        (
            server_config("http://minio.local:9000", force_path_style=False),
            "media",
            "x#y",
            "http://media.minio.local:9000/x%23y",
        ),
        (
            server_config("https://minio.local:443/s3/", force_path_style=True),
            "media",
            "x",
            "https://minio.local/s3/media/x",
        ),
        # An IP address cannot carry a bucket subdomain; dotted buckets break TLS.
        (
            server_config("http://127.0.0.1:9000", force_path_style=False),
            "media",
            "x",
            "http://127.0.0.1:9000/media/x",
        ),
        (
            server_config(""),
            "my.dotted.bucket",
            "x",
            "https://s3.us-east-1.amazonaws.com/my.dotted.bucket/x",
        ),
    ],
)
async def test_url_for(config: ServerConfig, bucket: str, key: str | None, url: str) -> None:
    transport = S3Transport(config)
    try:
        assert transport.url_for(bucket, key) == url
    finally:
        await transport.aclose()


async def test_url_for_sorts_and_encodes_the_query() -> None:
    transport = S3Transport(server_config("http://127.0.0.1:9000"))
    try:
        url = transport.url_for("b", None, {"prefix": "a b&c", "list-type": "2"})
        assert url == "http://127.0.0.1:9000/b?list-type=2&prefix=a%20b%26c"
        assert transport.url_for("b", "ü?", {"acl": ""}) == "http://127.0.0.1:9000/b/%C3%BC%3F?acl="
    finally:
        await transport.aclose()


async def test_transport_repr_hides_credentials() -> None:
    transport = S3Transport(server_config("http://127.0.0.1:9000", token="SESSION-TOKEN"))
    try:
        assert SECRET not in repr(transport)
        assert "SESSION-TOKEN" not in repr(transport)
    finally:
        await transport.aclose()


header_names = st.sampled_from(
    ["Content-Length", "content-type", "ETag", "X-Amz-Meta-A", "x-amz-meta-a", "Date"]
)
header_values = st.binary(max_size=12).filter(lambda raw: b"\r" not in raw and b"\n" not in raw)


@given(st.lists(st.tuples(header_names.map(str.encode), header_values), max_size=8))
def test_response_headers_read_as_httpx_headers_read(raw: list[tuple[bytes, bytes]]) -> None:
    ours, theirs = ResponseHeaders(raw), httpx.Headers(raw)
    if all(value.isascii() for _, value in raw):  # httpx picks one encoding for all values
        assert dict(ours.items()) == dict(theirs.items())
    for name in ("content-length", "Content-Type", "ETAG", "x-amz-meta-a", "missing"):
        if all(value.isascii() for _, value in raw):
            assert ours.get(name) == theirs.get(name)
        assert (name in ours) == (name in theirs)
    assert ours.get("missing", "") == ""


# --- a scripted server ----------------------------------------------------


@dataclass(slots=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


# A reply of None closes the connection without answering.
Script = list[Reply | None]


@dataclass(slots=True)
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """An HTTP/1.1 server on loopback that answers requests with a script, in order."""

    def __init__(self) -> None:
        self.script: Script = []
        self.received: list[Received] = []
        self.endpoint = ""
        self.connections = 0
        self.peak_connections = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self.peak_connections = max(self.peak_connections, self.connections)
        try:
            await self._serve(stream)
        finally:
            self.connections -= 1

    async def _serve(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:
                got = await read_head(stream, buffer)
                if got is None:
                    return
                head, buffer = got
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if "transfer-encoding" in headers:
                    self.received.append(Received(method, target, headers, b""))
                    return
                read = await read_body(stream, buffer, int(headers.get("content-length", "0")))
                if read is None:
                    return
                body, buffer = read
                self.received.append(Received(method, target, headers, body))
                reply = self.script.pop(0) if self.script else Reply()
                if reply is None:
                    return
                await trio.sleep(reply.delay)
                extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
                payload = b"" if method == "HEAD" else reply.body
                await stream.send_all(
                    f"HTTP/1.1 {reply.status} Scripted\r\nContent-Length: {len(reply.body)}\r\n"
                    f"x-amz-request-id: REQ{len(self.received)}\r\n{extra}\r\n".encode()
                    + payload
                )


@pytest.fixture
async def scripted(nursery: trio.Nursery) -> ScriptedServer:
    server = ScriptedServer()
    serve = functools.partial(trio.serve_tcp, host="127.0.0.1")
    listeners = await nursery.start(serve, server.handle, 0)
    server.endpoint = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    return server


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Retries happen at once; the list records which retry numbers were waited for."""
    waited: list[int] = []

    def no_wait(retry: int, **_: Any) -> float:
        waited.append(retry)
        return 0.0

    monkeypatch.setattr(transport_module, "backoff_delay", no_wait)
    return waited


@pytest.fixture
async def fake_s3(scripted: ScriptedServer) -> AsyncIterator[S3Transport]:
    transport = S3Transport(server_config(scripted.endpoint), retry_attempts=3, timeout=5)
    yield transport
    await transport.aclose()


async def test_throttled_request_is_retried_and_resigned(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    scripted.script = [Reply(503, error_xml("SlowDown")), Reply(200, b"done")]
    response = await fake_s3.request("GetObject", "GET", "bucket", "key")
    assert (response.status, response.content) == (200, b"done")
    assert delays == [0]
    assert len(scripted.received) == 2
    assert all(
        r.headers["authorization"].startswith("AWS4-HMAC-SHA256 ") for r in scripted.received
    )
    assert scripted.received[1].target == "/bucket/key"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(500, error_xml("InternalError")),
        Reply(502),
        Reply(504),
        Reply(429),
        Reply(400, error_xml("RequestTimeout")),
        Reply(400, error_xml("ThrottlingException")),
    ],
)
async def test_retryable_answers_are_retried_until_the_budget_is_spent(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int], reply: Reply
) -> None:
    scripted.script = [reply] * 4
    with pytest.raises(S3Error) as caught:
        await fake_s3.request("GetObject", "GET", "bucket", "key")
    assert caught.value.status == reply.status
    assert len(scripted.received) == 4
    assert delays == [0, 1, 2]


@pytest.mark.parametrize("reply", [Reply(404, error_xml("NoSuchKey")), Reply(403), Reply(400)])
async def test_client_errors_are_not_retried(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int], reply: Reply
) -> None:
    scripted.script = [reply]
    with pytest.raises(S3Error):
        await fake_s3.request("GetObject", "GET", "bucket", "key")
    assert len(scripted.received) == 1
    assert delays == []


async def test_non_idempotent_request_is_not_retried_after_it_was_sent(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    scripted.script = [Reply(500, error_xml("InternalError")), Reply(200)]
    with pytest.raises(S3Error) as caught:
        await fake_s3.request(
            "CreateMultipartUpload", "POST", "b", "k", query={"uploads": ""}, idempotent=False
        )
    assert (caught.value.code, caught.value.status) == ("InternalError", 500)
    assert len(scripted.received) == 1

    scripted.script = [None]
    with pytest.raises(S3Error) as caught:
        await fake_s3.request("CreateMultipartUpload", "POST", "b", "k", idempotent=False)
    assert (caught.value.code, caught.value.status) == ("ConnectionError", 0)
    assert len(scripted.received) == 2
    assert delays == []


async def test_dropped_connection_is_retried_for_idempotent_requests(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    scripted.script = [None, None, Reply(200, b"ok")]
    response = await fake_s3.request("GetObject", "GET", "b", "k")
    assert response.content == b"ok"
    assert delays == [0, 1]


async def test_error_inside_a_200_copy_answer_is_retried(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    copied = b'<CopyObjectResult><ETag>"e"</ETag></CopyObjectResult>'
    scripted.script = [Reply(200, b"  \n" + error_xml("InternalError")), Reply(200, copied)]
    response = await fake_s3.request("CopyObject", "PUT", "b", "k")
    assert s3xml.parse_copy_result(response.content) == ('"e"', 0)
    assert delays == [0]

    scripted.script = [Reply(200, error_xml("AccessDenied", "no"))]
    with pytest.raises(S3Error) as caught:
        await fake_s3.request("CopyObject", "PUT", "b", "k")
    assert (caught.value.status, caught.value.code) == (200, "AccessDenied")


async def test_clock_skew_is_corrected_from_the_server_date(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    two_hours_ahead = formatdate(time.time() + 7200, usegmt=True)
    scripted.script = [
        Reply(403, error_xml("RequestTimeTooSkewed"), {"Date": two_hours_ahead}),
        Reply(200),
    ]
    await fake_s3.request("GetObject", "GET", "b", "k")
    first, second = (
        datetime.strptime(r.headers["x-amz-date"], "%Y%m%dT%H%M%SZ") for r in scripted.received
    )
    assert abs((second - first).total_seconds() - 7200) < 5
    assert delays == [0]


async def test_a_failure_can_be_answered_instead_of_raised_after_the_same_retries(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    scripted.script = [Reply(503, error_xml("SlowDown"))] * 4
    response = await fake_s3.request("DeleteObject", "DELETE", "b", "k", raise_errors=False)
    assert response.error is not None
    assert (response.status, response.error.code) == (503, "SlowDown")
    assert len(scripted.received) == 4
    assert delays == [0, 1, 2]

    scripted.script = [Reply(403)]
    response = await fake_s3.request("DeleteObject", "DELETE", "b", "k", raise_errors=False)
    assert response.error is not None and response.error.code == "AccessDenied"
    assert delays == [0, 1, 2]  # not retried

    scripted.script = [Reply(204)]
    response = await fake_s3.request("DeleteObject", "DELETE", "b", "k", raise_errors=False)
    assert (response.status, response.error) == (204, None)


async def test_an_abort_never_raises_counts_a_gone_upload_as_aborted_and_queues_a_failed_one(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    book = multipart.UploadBook()
    target = multipart.MultipartTarget(fake_s3, "b", "k", trio.CapacityLimiter(1), {}, book=book)
    scripted.script = [Reply(404, error_xml("NoSuchUpload"))]
    await multipart.abort_upload(target, "gone")
    assert book.pending_aborts == 0

    scripted.script = [Reply(500, error_xml("InternalError"))] * 4
    await multipart.abort_upload(target, "up-1")
    assert len(scripted.received) == 1 + 4  # the transport's retries, then queued
    assert book.pending_aborts == 1
    assert book.failed_aborts.receive_nowait() == (target, "up-1")


async def test_ok_statuses_widen_success(scripted: ScriptedServer, fake_s3: S3Transport) -> None:
    scripted.script = [Reply(404, error_xml("NoSuchKey"))]
    response = await fake_s3.request("DeleteObject", "DELETE", "b", "k", ok_statuses=(204, 404))
    assert response.status == 404


async def test_streamed_body_is_resent_on_retry_with_content_length(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    calls = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal calls
        calls += 1
        for index in range(4):
            yield bytes([65 + index]) * 1000

    scripted.script = [Reply(503, error_xml("SlowDown")), Reply(200)]
    await fake_s3.request("PutObject", "PUT", "b", "k", body=chunks, content_length=4000)
    assert calls == 2
    final = scripted.received[-1]
    assert final.headers["content-length"] == "4000"
    assert "transfer-encoding" not in final.headers
    assert final.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert final.body == b"A" * 1000 + b"B" * 1000 + b"C" * 1000 + b"D" * 1000


async def test_streamed_body_shorter_than_declared_fails_without_retry(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    async def short() -> AsyncIterator[bytes]:
        yield b"only this"

    async def long() -> AsyncIterator[bytes]:
        yield b"more than ten bytes"

    with pytest.raises(S3Error) as caught:
        await fake_s3.request("PutObject", "PUT", "b", "k", body=short, content_length=100)
    assert (caught.value.code, caught.value.status) == ("IncompleteBody", 0)
    with pytest.raises(S3Error) as caught:
        await fake_s3.request("PutObject", "PUT", "b", "k", body=long, content_length=10)
    assert (caught.value.code, caught.value.status) == ("InvalidRequest", 0)
    assert delays == []


async def test_streamed_body_needs_a_length(fake_s3: S3Transport) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"x"

    with pytest.raises(ValueError, match="content_length"):
        await fake_s3.request("PutObject", "PUT", "b", "k", body=chunks)
    with pytest.raises(ValueError, match="content_length"):
        await fake_s3.request("PutObject", "PUT", "b", "k", body=b"abc", content_length=4)


async def test_headers_checksums_and_token_reach_the_server(scripted: ScriptedServer) -> None:
    config = server_config(scripted.endpoint, token="SESSION")
    transport = S3Transport(config)
    try:
        await transport.request(
            "PutObject", "PUT", "b", "k", headers={"Content-Type": "text/plain"}, body=b"hello"
        )
        await transport.request(
            "DeleteObjects", "POST", "b", query={"delete": ""}, body=b"<Delete/>"
        )
    finally:
        await transport.aclose()
    put, delete = scripted.received
    assert put.headers["content-type"] == "text/plain"
    assert put.headers["x-amz-content-sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert "content-md5" not in put.headers
    assert put.headers["x-amz-security-token"] == "SESSION"
    assert "x-amz-security-token" in put.headers["authorization"]
    assert put.headers["user-agent"].startswith("trio-s3rpc/")
    assert delete.target == "/b?delete="
    md5 = base64.b64encode(hashlib.md5(b"<Delete/>").digest()).decode()
    assert delete.headers["content-md5"] == md5


async def test_content_length_is_sent_as_httpx_sends_it(
    scripted: ScriptedServer, fake_s3: S3Transport
) -> None:
    """Requests are built for httpcore directly; the framing stays httpx's: a length for
    every body and for an empty PUT/POST, none (and never chunked) for GET/HEAD/DELETE."""
    await fake_s3.request("PutObject", "PUT", "b", "empty", body=b"")
    await fake_s3.request("PutObject", "PUT", "b", "full", body=b"12345")
    await fake_s3.request("GetObject", "GET", "b", "k")
    await fake_s3.request("HeadObject", "HEAD", "b", "k")
    await fake_s3.request("DeleteObject", "DELETE", "b", "k", ok_statuses=(200, 204))
    lengths = [received.headers.get("content-length") for received in scripted.received]
    assert lengths == ["0", "5", None, None, None]
    assert all("transfer-encoding" not in received.headers for received in scripted.received)
    assert [received.headers["host"] for received in scripted.received] == [
        scripted.endpoint.removeprefix("http://")
    ] * 5


@pytest.mark.parametrize(
    ("checksums", "signed"), [("when_required", False), ("when_supported", True)]
)
async def test_large_bodies_are_signed_only_when_checksums_are_wanted(
    scripted: ScriptedServer, checksums: str, signed: bool
) -> None:
    body = b"L" * 100_000
    transport = S3Transport(server_config(scripted.endpoint, checksums=checksums))
    try:
        await transport.request("PutObject", "PUT", "b", "k", body=body)
    finally:
        await transport.aclose()
    sent = scripted.received[0].headers["x-amz-content-sha256"]
    assert sent == (hashlib.sha256(body).hexdigest() if signed else "UNSIGNED-PAYLOAD")


@pytest.mark.parametrize("value", ["naïve", "line\r\nx-injected: 1"])
async def test_header_values_must_be_printable_ascii(
    scripted: ScriptedServer, fake_s3: S3Transport, value: str
) -> None:
    with pytest.raises(S3Error) as caught:
        await fake_s3.request("PutObject", "PUT", "b", "k", headers={"x-amz-meta-note": value})
    assert (caught.value.code, caught.value.status) == ("InvalidArgument", 0)
    assert "x-amz-meta-note" in caught.value.message
    assert scripted.received == []


async def test_signatures_echoed_by_a_server_are_redacted(
    scripted: ScriptedServer, fake_s3: S3Transport
) -> None:
    scripted.script = [
        Reply(400, error_xml("InvalidArgument", "bad Signature=0123abcdef " + SECRET))
    ]
    with pytest.raises(S3Error) as caught:
        await fake_s3.request("GetObject", "GET", "b", "k")
    text = str(caught.value) + repr(caught.value)
    assert "0123abcdef" not in text
    assert SECRET not in text
    assert "InvalidArgument" in text


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 300_001])
async def test_streamed_body_comes_in_pieces_of_at_least_the_asked_size(
    scripted: ScriptedServer, fake_s3: S3Transport, size: int
) -> None:
    body = bytes(index % 251 for index in range(size))
    scripted.script = [Reply(200, body)]
    async with fake_s3.stream("GetObject", "GET", "b", "k") as response:
        pieces = [piece async for piece in response.aiter_raw(65_536)]
    assert b"".join(pieces) == body
    assert all(len(piece) >= 65_536 for piece in pieces[:-1])
    assert all(pieces)
    # Read to its end, the answer gave its connection back for the next request.
    scripted.script = [Reply(200, b"next")]
    assert (await fake_s3.request("GetObject", "GET", "b", "k")).content == b"next"
    assert scripted.peak_connections == 1


async def test_stream_checks_the_status_before_yielding(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    scripted.script = [Reply(503, error_xml("SlowDown")), Reply(200, b"x" * 100_000)]
    async with fake_s3.stream("GetObject", "GET", "b", "k") as response:
        assert response.status_code == 200
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert body == b"x" * 100_000
    assert delays == [0]

    scripted.script = [Reply(404, error_xml("NoSuchKey", "gone"))]
    with pytest.raises(S3Error) as caught:
        async with fake_s3.stream("GetObject", "GET", "b", "missing"):
            pytest.fail("entered the context of a failed request")
    assert (caught.value.code, caught.value.message) == ("NoSuchKey", "gone")


async def test_the_observer_is_told_each_request_and_its_status(
    scripted: ScriptedServer, fake_s3: S3Transport, delays: list[int]
) -> None:
    """What the S3 request metrics count: streamed answers too, retries counted."""
    seen: list[tuple[str, str, int]] = []
    fake_s3.observer = lambda operation, status, seconds, retries: seen.append(
        (operation, status, retries)
    )
    scripted.script = [Reply(503, error_xml("SlowDown")), Reply(206, b"part")]
    async with fake_s3.stream("GetObject", "GET", "b", "k") as response:
        assert await response.aread() == b"part"
    scripted.script = [Reply(200, b"")]
    await fake_s3.request("HeadObject", "HEAD", "b", "k")
    assert seen == [("GetObject", "206", 1), ("HeadObject", "200", 0)]


async def test_cancelled_request_leaves_the_transport_usable(
    scripted: ScriptedServer, fake_s3: S3Transport
) -> None:
    scripted.script = [Reply(200, b"late", delay=5.0), Reply(200, b"next")]
    with trio.move_on_after(0.1) as scope:
        await fake_s3.request("GetObject", "GET", "b", "slow")
    assert scope.cancelled_caught
    response = await fake_s3.request("GetObject", "GET", "b", "k")
    assert response.content == b"next"


@pytest.mark.parametrize(("max_connections", "concurrent"), [(3, 8), (20, 20)])
async def test_max_connections_is_the_limit_and_is_reachable(
    scripted: ScriptedServer, max_connections: int, concurrent: int
) -> None:
    scripted.script = [Reply(200, b"ok", delay=0.05)] * concurrent
    transport = S3Transport(server_config(scripted.endpoint), max_connections=max_connections)
    answers: list[bytes] = []

    async def get(index: int) -> None:
        answers.append((await transport.request("GetObject", "GET", "b", f"k{index}")).content)

    try:
        async with trio.open_nursery() as nursery:
            for index in range(concurrent):
                nursery.start_soon(get, index)
    finally:
        await transport.aclose()
    assert answers == [b"ok"] * concurrent
    assert scripted.peak_connections == max_connections


async def test_unreachable_server_fails_after_the_retry_schedule() -> None:
    transport = S3Transport(server_config(f"http://127.0.0.1:{free_port()}"), retry_attempts=1)
    started = trio.current_time()
    try:
        with pytest.raises(S3Error) as caught:
            await transport.request("GetObject", "GET", "b", "k", idempotent=False)
    finally:
        await transport.aclose()
    assert (caught.value.code, caught.value.status) == ("ConnectionError", 0)
    assert SECRET not in str(caught.value)
    # Refused before sending: retried even though not idempotent, after one delay.
    assert trio.current_time() - started >= backoff_delay(0, rng=lambda: 0.0)


# --- against SeaweedFS ----------------------------------------------------


@pytest.fixture
async def live(seaweedfs: Any) -> AsyncIterator[S3Transport]:
    config = server_config(
        seaweedfs.endpoint,
        key=seaweedfs.access_key,
        secret=seaweedfs.secret_key,
        region=seaweedfs.region,
    )
    transport = S3Transport(config, retry_attempts=2, timeout=20)
    yield transport
    await transport.aclose()


@pytest.fixture
def prefix() -> Iterator[str]:
    yield f"s3-transport-tests/{uuid.uuid4().hex}/"


AWKWARD_KEYS = [
    "plain.txt",
    "with space/and+plus.txt",
    "hash#question?amp&percent%.bin",
    "ünï/çødé €/日本語.txt",
    "a..b.txt",
    "quote'\"!$()*,;=@[]{}^`|~.txt",
]


@pytest.mark.integration
@pytest.mark.parametrize("name", AWKWARD_KEYS)
async def test_put_get_head_delete_round_trip(live: S3Transport, prefix: str, name: str) -> None:
    key = prefix + name
    body = f"content of {name}".encode()
    put = await live.request(
        "PutObject", "PUT", "test-bucket", key, headers={"Content-Type": "text/plain"}, body=body
    )
    assert put.status == 200
    got = await live.request("GetObject", "GET", "test-bucket", key)
    assert got.content == body
    head = await live.request("HeadObject", "HEAD", "test-bucket", key)
    assert int(head.headers["content-length"]) == len(body)
    assert head.headers["content-type"] == "text/plain"

    listed = await live.request(
        "ListObjectsV2", "GET", "test-bucket", query={"list-type": "2", "prefix": prefix}
    )
    assert [entry.key for entry in s3xml.parse_list_objects_v2(listed.content).contents] == [key]

    await live.request("DeleteObject", "DELETE", "test-bucket", key)
    with pytest.raises(S3Error) as caught:
        await live.request("HeadObject", "HEAD", "test-bucket", key)
    assert (caught.value.status, caught.value.code) == (404, "NoSuchKey")


@pytest.mark.integration
async def test_streamed_upload_and_large_unsigned_body(live: S3Transport, prefix: str) -> None:
    chunk = bytes(range(256)) * 256  # 64 KiB

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(16):
            yield chunk

    await live.request(
        "PutObject",
        "PUT",
        "test-bucket",
        prefix + "streamed",
        body=chunks,
        content_length=16 * len(chunk),
    )
    async with live.stream(
        "GetObject",
        "GET",
        "test-bucket",
        prefix + "streamed",
        headers={"Range": "bytes=65536-65545"},
    ) as response:
        assert response.status_code == 206
        assert b"".join([part async for part in response.aiter_raw()]) == chunk[:10]
    whole = await live.request("GetObject", "GET", "test-bucket", prefix + "streamed")
    assert whole.content == chunk * 16

    big = b"\x00\xff" * 100_000  # above the signed-payload limit: sent UNSIGNED-PAYLOAD
    await live.request("PutObject", "PUT", "test-bucket", prefix + "big", body=big)
    assert (await live.request("GetObject", "GET", "test-bucket", prefix + "big")).content == big


@pytest.mark.integration
async def test_missing_object_is_no_such_key(live: S3Transport, prefix: str) -> None:
    with pytest.raises(S3Error) as caught:
        await live.request("GetObject", "GET", "test-bucket", prefix + "missing")
    assert (caught.value.status, caught.value.code) == (404, "NoSuchKey")
    assert caught.value.request_id


@pytest.mark.integration
async def test_wrong_secret_is_refused_without_leaking_it(seaweedfs: Any, prefix: str) -> None:
    wrong = "not-the-secret-" + uuid.uuid4().hex
    transport = S3Transport(
        server_config(
            seaweedfs.endpoint, key=seaweedfs.access_key, secret=wrong, region=seaweedfs.region
        )
    )
    try:
        with pytest.raises(S3Error) as caught:
            await transport.request("PutObject", "PUT", "test-bucket", prefix + "x", body=b"x")
    finally:
        await transport.aclose()
    error = caught.value
    assert error.status == 403
    assert error.operation == "PutObject"
    text = str(error) + repr(error) + error.message
    assert wrong not in text
    assert "Signature=" not in text


@pytest.mark.integration
async def test_presigned_url_is_fetchable_by_a_plain_client(live: S3Transport, prefix: str) -> None:
    key = prefix + "shared file+#?.txt"
    await live.request("PutObject", "PUT", "test-bucket", key, body=b"presigned bytes")
    url = live.presign_get("test-bucket", key, 300)
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(url)
        unsigned = await client.get(live.url_for("test-bucket", key))
    assert (response.status_code, response.content) == (200, b"presigned bytes")
    assert unsigned.status_code == 403


@pytest.mark.integration
async def test_delete_objects_with_required_checksum(live: S3Transport, prefix: str) -> None:
    keys = [prefix + "d1", prefix + "d 2&"]
    for key in keys:
        await live.request("PutObject", "PUT", "test-bucket", key, body=b"x")
    response = await live.request(
        "DeleteObjects",
        "POST",
        "test-bucket",
        query={"delete": ""},
        body=s3xml.build_delete_objects(keys, quiet=False),
    )
    assert sorted(s3xml.parse_delete_result(response.content).deleted) == sorted(keys)


@pytest.mark.integration
async def test_large_signed_payload_is_accepted(seaweedfs: Any, prefix: str) -> None:
    config = server_config(
        seaweedfs.endpoint,
        key=seaweedfs.access_key,
        secret=seaweedfs.secret_key,
        region=seaweedfs.region,
        checksums="when_supported",
    )
    transport = S3Transport(config)
    body = bytes(range(256)) * 1024  # 256 KiB, signed in full
    try:
        await transport.request("PutObject", "PUT", "test-bucket", prefix + "signed", body=body)
        got = await transport.request("GetObject", "GET", "test-bucket", prefix + "signed")
    finally:
        await transport.aclose()
    assert got.content == body


# --- what the service answers to a checksum -------------------------------


async def test_an_upload_whose_checksum_is_not_echoed_is_noticed_once(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Ceph RGW answers a PutObject with x-amz-checksum-crc32c without one: it did not
    verify, and the server says so (once per server) instead of taking it as verified."""
    crc = checksums.header_value(checksums.crc32c(b"hello"))
    scripted.script = [Reply(headers={"x-amz-checksum-crc32c": crc}), Reply(), Reply()]
    transport = S3Transport(server_config(scripted.endpoint, checksums="when_supported"))
    try:
        await transport.request("PutObject", "PUT", "b", "echoed", body=b"hello")
        assert transport.unconfirmed_checksums == 0
        assert "checksum_not_verified" not in caplog.text
        await transport.request("PutObject", "PUT", "b", "silent", body=b"hello")
        await transport.request("PutObject", "PUT", "b", "silent-2", body=b"hello")
    finally:
        await transport.aclose()
    assert transport.unconfirmed_checksums == 2
    noticed = [r.getMessage() for r in caplog.records if "checksum_not_verified" in r.getMessage()]
    assert len(noticed) == 1
    assert "server=test operation=PutObject" in noticed[0]
    assert "did not verify" in noticed[0]


async def test_an_upload_answered_with_another_checksum_is_a_bad_digest(
    scripted: ScriptedServer, delays: list[int]
) -> None:
    wrong = checksums.header_value(checksums.crc32c(b"other"))
    scripted.script = [Reply(headers={"x-amz-checksum-crc32c": wrong})] * 4
    transport = S3Transport(
        server_config(scripted.endpoint, checksums="when_supported"), retry_attempts=3
    )
    try:
        with pytest.raises(S3Error) as caught:
            await transport.request("UploadPart", "PUT", "b", "k", body=b"hello")
    finally:
        await transport.aclose()
    assert caught.value.code == "BadDigest"
    assert wrong in caught.value.message
    assert len(scripted.received) == 4  # retried: the bytes are sent again
    assert delays == [0, 1, 2]
