"""Requests to one S3 server: signed, sent on its pool, checked, retried.

:class:`S3Transport` turns ``(operation, method, bucket, key, query, headers,
body)`` into a signed request on the server's connection pool
(:class:`~trio_s3rpc.s3.pool.ConnectionPool`, over HTTP/1.1 connections of
h11, :mod:`trio_s3rpc.s3.http11`), and its answer into an
:class:`~trio_s3rpc.s3.responses.S3Response` or an :class:`S3Error`. Where a
request goes is :mod:`~trio_s3rpc.s3.addressing`'s; which checksums it
carries, :mod:`~trio_s3rpc.s3.integrity`'s; what a failure is and whether it
may be repeated, :mod:`~trio_s3rpc.s3.failures`' (httpcore exceptions become
``S3Error`` there, code ``ConnectionError`` or ``Timeout``, status 0).
Requests that are safe to repeat are retried on connection failures, 5xx
answers and throttling, with backoff spanning several seconds, and re-signed
on every attempt. Nothing here knows about RPC; the storage layer maps
``S3Error``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Container,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, TypeVar

import httpx
import trio

from trio_s3rpc import __version__
from trio_s3rpc.s3.addressing import Addressing, Target
from trio_s3rpc.s3.endpoint import ServerConfig
from trio_s3rpc.s3.exceptions import HTTP_ERRORS
from trio_s3rpc.s3.failures import (
    ERROR_IN_200_OPERATIONS,
    AttemptFailed,
    answer_failure,
    backoff_delay,
    retry_schedule,
    transport_failure,
)
from trio_s3rpc.s3.http11 import Response
from trio_s3rpc.s3.integrity import CRC32C_HEADER, add_checksum_headers
from trio_s3rpc.s3.pool import ConnectionPool
from trio_s3rpc.s3.responses import HTTPResponse, ResponseHeaders, S3Response
from trio_s3rpc.s3.signing import (
    UNSIGNED_PAYLOAD,
    RequestSigner,
    payload_hash,
)
from trio_s3rpc.s3.xml import S3Error, error_from_response, error_in_body

__all__ = [
    "BodyFactory",
    "HTTPResponse",
    "S3Error",
    "S3Response",
    "S3Transport",
    "backoff_delay",
    "retry_schedule",
]

log = logging.getLogger("trio_s3rpc.s3")

BodyFactory = Callable[[], AsyncIterable[bytes]]
# (S3 operation, final status: HTTP code or transport error code, seconds, retries)
RequestObserver = Callable[[str, str, float, int], None]
"""Called once per attempt, so that a retried request can send its body again."""

CONNECT_TIMEOUT = 10.0
KEEPALIVE_EXPIRY = 5.0  # httpx's default

_SIGNATURE = re.compile(r"(Signature=)[0-9a-fA-F]+")

# httpx sends "Content-Length: 0" for these even without a body; S3 wants it on PUT.
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})

T = TypeVar("T")


class _Prepared(NamedTuple):
    """A signed request, as the pool sends it."""

    origin: tuple[bytes, bytes, int]
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes | AsyncIterable[bytes]


class _Streamed:
    """The context of :meth:`S3Transport.stream`: a class rather than an
    ``asynccontextmanager``, whose generator costs more than the small reads inside."""

    __slots__ = ("_operation", "_request", "_response", "_transport")

    def __init__(self, transport: S3Transport, operation: str, *request: Any) -> None:
        """``request``: the rest of :meth:`S3Transport._open_stream`'s arguments."""
        self._transport = transport
        self._operation = operation
        self._request = request
        self._response: HTTPResponse | None = None

    async def __aenter__(self) -> HTTPResponse:
        self._response = await self._transport._open_stream(self._operation, *self._request)
        return self._response

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        response = self._response
        assert response is not None
        # Closing waits only where it closes a connection, and shields that itself.
        await response.aclose()
        if isinstance(exc, HTTP_ERRORS):
            raise self._transport._transport_failure(self._operation, exc).error from exc


class _BodyLengthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _exactly(chunks: AsyncIterable[bytes], length: int) -> AsyncIterator[bytes]:
    """The chunks, checked to total ``length`` bytes: neither S3 nor HTTP/1.1 framing
    survives a body that disagrees with its Content-Length."""
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        if sent > length:
            raise _BodyLengthError("InvalidRequest", f"body is longer than its {length} bytes")
        yield chunk
    if sent < length:
        raise _BodyLengthError("IncompleteBody", f"body ended at {sent} of {length} bytes")


class S3Transport:
    """Signed, retried requests to one S3 server over its own connection pools.

    ``retry_attempts`` is how many times a failed request may be repeated
    after its first attempt; ``timeout`` bounds each network wait (connecting,
    at most 10 s; each read; each write; waiting for a free connection), not a
    whole request. Close the transport with :meth:`aclose`. All methods may be
    called from many trio tasks at once; at most ``max_connections`` requests
    are on the wire.
    """

    def __init__(
        self,
        server: ServerConfig,
        *,
        max_connections: int = 100,
        timeout: float = 60.0,
        retry_attempts: int = 5,
    ) -> None:
        if max_connections < 1 or timeout <= 0 or retry_attempts < 0:
            raise ValueError("max_connections >= 1, timeout > 0 and retry_attempts >= 0")
        self._server_name = server.name
        self._signer = RequestSigner(server.credentials, server.region)
        self._redact_secrets = tuple(
            secret for secret in (server.credentials.secret, server.credentials.token) if secret
        )
        self.retry_attempts = retry_attempts
        # Told (operation, final status, seconds, retries) of every request.
        self.observer: RequestObserver | None = None
        self._addressing = Addressing(server)
        # when_supported: every in-memory body is signed, which S3 and MinIO
        # verify (SHA-256 is cheaper here than a Content-MD5 and needs no extra
        # header), and carries an x-amz-checksum-crc32c header, which SeaweedFS
        # verifies too where it ignores a wrong payload signature (measured).
        self._sign_large_payloads = server.checksums == "when_supported"
        self._flexible_checksums = server.checksums == "when_supported"
        # Uploads sent with x-amz-checksum-crc32c whose answer did not confirm it: the
        # service did not say it verified them (Ceph RGW ignores the header). Logged once.
        self.unconfirmed_checksums = 0
        self._user_agent = f"trio-s3rpc/{__version__}"
        self._timeouts = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)).as_dict()
        self._pool = ConnectionPool(
            max_connections=max_connections,
            keepalive_expiry=KEEPALIVE_EXPIRY,
            # httpx's TLS context: certifi's CA bundle, no environment settings.
            ssl_context=httpx.create_ssl_context(trust_env=False),
        )

    def __repr__(self) -> str:
        return f"S3Transport(server={self._server_name!r}, endpoint={self._addressing.endpoint})"

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._pool.aclose()

    # --- addressing ---------------------------------------------------------

    def url_for(
        self, bucket: str, key: str | None = None, query: Mapping[str, str] | None = None
    ) -> str:
        """The URL of a bucket or object, path-style or virtual-hosted as configured.

        The key is percent-encoded as S3 expects ("/" kept); query parameters
        are encoded and sorted.
        """
        return self._addressing.target(bucket, key, query).url

    def presign_get(self, bucket: str, key: str, expires_in: int) -> str:
        """A presigned GET URL (SigV4 query auth) valid for 1..604800 seconds.

        Raises ``ValueError`` for an expiry out of range.
        """
        return self.presign("GET", bucket, key, expires_in)

    def public_url_for(self, bucket: str, key: str) -> str:
        """The unsigned URL of an object at the public endpoint (the endpoint without one)."""
        return self._addressing.public_url(bucket, key, None)

    def presign(
        self,
        method: str,
        bucket: str,
        key: str,
        expires_in: int,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """A presigned URL at the public endpoint; ``query`` and ``headers`` are signed.

        Raises ``ValueError`` for an expiry out of range (1..604800 seconds).
        """
        url = self._addressing.public_url(bucket, key, query)
        return self._signer.presign(method, url, expires_in, headers)

    def presign_post(
        self, bucket: str, conditions: Sequence[object], expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """A browser POST upload: the bucket's URL at the public endpoint and the signed
        fields of a policy with ``conditions``."""
        return self._addressing.public_url(bucket, None, None), self._signer.post_policy(
            conditions, expires_in
        )

    # --- requests -----------------------------------------------------------

    async def request(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | BodyFactory = b"",
        content_length: int | None = None,
        idempotent: bool = True,
        ok_statuses: Container[int] = (200, 204, 206),
        raise_errors: bool = True,
    ) -> S3Response:
        """Send one S3 request, retrying as allowed, and return its whole answer.

        ``body`` is bytes or a :data:`BodyFactory`, which needs
        ``content_length`` (S3 refuses chunked uploads). Statuses outside
        ``ok_statuses`` raise :class:`S3Error`, as do connection failures once
        the retries are spent; with ``raise_errors=False`` that failure is the
        answer's ``error`` instead (for cleanup that goes on whatever failed).
        Cancellation abandons the request at once.
        """
        if not isinstance(body, bytes):
            if content_length is None or content_length < 0:
                raise ValueError("a streamed body needs its content_length")
        elif content_length is not None and content_length != len(body):
            raise ValueError("content_length differs from the length of body")
        target = self._addressing.target(bucket, key, query)
        base_headers = self._base_headers(operation, target.host, headers, body)

        async def attempt() -> S3Response:
            request = self._signed_request(method, target, base_headers, body, content_length)
            response = await self._send(operation, request)
            try:
                content = b"".join([chunk async for chunk in response.stream])
            except HTTP_ERRORS as exc:
                raise self._transport_failure(operation, exc) from exc
            finally:
                await response.aclose()
            headers = ResponseHeaders(response.headers)
            self._check(operation, method, response.status, headers, content, ok_statuses)
            sent_checksum = base_headers.get(CRC32C_HEADER)
            if sent_checksum and 200 <= response.status < 300:
                self._check_checksum_answer(operation, sent_checksum, headers)
            return S3Response(response.status, headers, content)

        give_up = None if raise_errors else S3Response.failed
        return await self._with_retries(operation, idempotent, attempt, give_up)

    def stream(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[HTTPResponse]:
        """Open a request whose answer body the caller reads as it arrives.

        The status is checked (and failures retried) before the context is
        entered; inside it, iterate ``response.aiter_raw()`` (the bytes as
        stored) or ``aiter_bytes()``. A connection failure while reading raises
        :class:`S3Error`. Leaving the context closes the response.
        """
        return _Streamed(self, operation, method, bucket, key, query, headers)

    async def _open_stream(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str | None,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> HTTPResponse:
        target = self._addressing.target(bucket, key, query)
        base_headers = self._base_headers(operation, target.host, headers, b"")

        async def attempt() -> HTTPResponse:
            request = self._signed_request(method, target, base_headers, b"", None)
            response = HTTPResponse(await self._send(operation, request))
            if response.status_code in (200, 206):
                return response
            try:
                content = await response.aread()
            except HTTP_ERRORS as exc:
                raise self._transport_failure(operation, exc) from exc
            finally:
                await response.aclose()
            raise self._failure(operation, method, response.status_code, response.headers, content)

        return await self._with_retries(operation, True, attempt)

    # --- one attempt --------------------------------------------------------

    def _base_headers(
        self,
        operation: str,
        host: str,
        headers: Mapping[str, str] | None,
        body: bytes | BodyFactory,
    ) -> dict[str, str]:
        """The request's headers before signing, names in lower case."""
        prepared = {"host": host, "user-agent": self._user_agent}
        if headers:
            for name, value in headers.items():
                if not value.isascii() or not value.isprintable():
                    # HTTP/1.1 headers carry ASCII; metadata in other scripts
                    # must be encoded (RFC 2047) by the caller.
                    message = f"header {name} must be printable ASCII"
                    raise S3Error(operation, 0, "InvalidArgument", message)
                prepared[name.lower()] = value
        add_checksum_headers(prepared, operation, body, flexible=self._flexible_checksums)
        return prepared

    def _signed_request(
        self,
        method: str,
        target: Target,
        base_headers: dict[str, str],
        body: bytes | BodyFactory,
        content_length: int | None,
    ) -> _Prepared:
        """A request signed now: every attempt is signed afresh (the time moves on)."""
        headers = dict(base_headers)
        content: bytes | AsyncIterable[bytes]
        if isinstance(body, bytes):
            content = body
            content_sha256 = payload_hash(body, sign_large=self._sign_large_payloads)
            if body or method in _METHODS_WITH_BODY:
                headers["content-length"] = str(len(body))
        else:
            # S3 refuses chunked uploads: the length goes in Content-Length.
            assert content_length is not None
            content = _exactly(body(), content_length)
            content_sha256 = UNSIGNED_PAYLOAD
            headers["content-length"] = str(content_length)
        self._signer.sign_headers(method, target.path, target.query, headers, content_sha256)
        return _Prepared(
            target.origin,
            method.encode("ascii"),
            target.target,
            # UTF-8 as httpx does; h11 refuses a name that is not an HTTP token.
            [(name.encode(), value.encode()) for name, value in headers.items()],
            content,
        )

    async def _send(self, operation: str, request: _Prepared) -> Response:
        """Send on a pooled connection; the caller must close the response."""
        try:
            return await self._pool.send(*request, self._timeouts)
        except HTTP_ERRORS as exc:
            raise self._transport_failure(operation, exc) from exc
        except _BodyLengthError as exc:
            # The caller's stream disagrees with its content_length: a bug that
            # a retry would repeat.
            error = S3Error(operation, 0, exc.code, str(exc))
            raise AttemptFailed(error, sent=True, retryable=False) from None

    def _check(
        self,
        operation: str,
        method: str,
        status: int,
        headers: ResponseHeaders,
        content: bytes,
        ok_statuses: Container[int],
    ) -> None:
        """Raise AttemptFailed for an answer that is a failure."""
        if status not in ok_statuses:
            raise self._failure(operation, method, status, headers, content)
        if status == 200 and operation in ERROR_IN_200_OPERATIONS:
            error = error_in_body(content, operation)
            if error is not None:
                raise self._answer_failure(error, headers)

    def _check_checksum_answer(self, operation: str, sent: str, headers: ResponseHeaders) -> None:
        """What the service answered to an upload sent with its CRC32C.

        S3 (and SeaweedFS) echo the checksum they verified; another value means the
        service took other bytes than were sent (retried). No value means it did not
        verify: nothing is claimed then, and the server's own end-to-end CRC32C, stored
        with the object and checked on reads, is the only check.
        """
        answered = headers.get(CRC32C_HEADER, "")
        if answered == sent:
            return
        if answered:
            message = (
                f"the service answered {CRC32C_HEADER} {answered} to the {sent} sent: "
                "it received other bytes"
            )
            raise AttemptFailed(
                S3Error(operation, 200, "BadDigest", message), sent=True, retryable=True
            )
        self.unconfirmed_checksums += 1
        if self.unconfirmed_checksums == 1:
            log.warning(
                "event=checksum_not_verified server=%s operation=%s detail=%r",
                self._server_name,
                operation,
                f"the answer carried no {CRC32C_HEADER}: the service did not verify "
                "the upload; only this server's stored CRC32C checks it, on reads",
            )

    def _failure(
        self, operation: str, method: str, status: int, headers: ResponseHeaders, content: bytes
    ) -> AttemptFailed:
        request_id = headers.get("x-amz-request-id", "")
        error = error_from_response(operation, method, status, content, request_id)
        return self._answer_failure(error, headers)

    def _answer_failure(self, error: S3Error, headers: ResponseHeaders) -> AttemptFailed:
        if error.code == "RequestTimeTooSkewed":
            self._correct_clock(headers.get("date", ""))
        error.message = self._redact(error.message)
        return answer_failure(error)

    def _transport_failure(self, operation: str, exc: Exception) -> AttemptFailed:
        """An httpcore exception (one of HTTP_ERRORS) as this attempt's failure."""
        description = self._redact(str(exc) or type(exc).__name__)
        return transport_failure(operation, exc, self._addressing.netloc, description)

    async def _with_retries(
        self,
        operation: str,
        idempotent: bool,
        attempt: Callable[[], Awaitable[T]],
        give_up: Callable[[S3Error], T] | None = None,
    ) -> T:
        """The first attempt that succeeds; the last failure is raised, or handed to
        ``give_up`` to answer, once no retry is allowed."""
        retry = 0
        observer = self.observer
        started = time.perf_counter() if observer is not None else 0.0
        while True:
            try:
                result = await attempt()
                if observer is not None:
                    observer(operation, _status_of(result), time.perf_counter() - started, retry)
                return result
            except AttemptFailed as failure:
                error = failure.error
                may_repeat = failure.retryable and (idempotent or not failure.sent)
                if not may_repeat or retry >= self.retry_attempts:
                    if observer is not None:
                        status = str(error.status) if error.status else error.code
                        observer(operation, status, time.perf_counter() - started, retry)
                    if give_up is not None:
                        return give_up(error)
                    raise error from failure.__cause__
            delay = backoff_delay(retry)
            log.info(
                "s3_retry operation=%s code=%s status=%d retry=%d delay=%.2f",
                operation,
                error.code,
                error.status,
                retry + 1,
                delay,
            )
            await trio.sleep(delay)
            retry += 1

    def _correct_clock(self, date_header: str) -> None:
        """Sign with the server's clock from now on (its Date header, to the second)."""
        try:
            server_time = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            return
        self._signer.clock_offset = server_time - time.time()
        log.warning(
            "s3_clock_skew server=%s offset_seconds=%.0f",
            self._server_name,
            self._signer.clock_offset,
        )

    def _redact(self, text: str) -> str:
        """Text from elsewhere (a server, httpx) with any credential or signature removed."""
        for secret in self._redact_secrets:
            text = text.replace(secret, "***")
        return _SIGNATURE.sub(r"\1***", text)


def _status_of(result: object) -> str:
    """The HTTP status of what an attempt returned: an S3Response or an HTTPResponse."""
    if isinstance(result, S3Response):
        return str(result.status)
    if isinstance(result, HTTPResponse):
        return str(result.status_code)
    return "?"
