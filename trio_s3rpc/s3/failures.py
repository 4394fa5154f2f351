"""Whether a failed attempt may be repeated, and when: S3's answers and httpcore's
exceptions as an :class:`AttemptFailed`, and the backoff between attempts.

A failure is retryable when another attempt may succeed (a 5xx answer,
throttling, a connection that broke or timed out); whether the transport
repeats it also depends on whether the request had left (``sent``) and is
safe to repeat. The delays grow from :data:`RETRY_BASE_DELAY` to
:data:`RETRY_MAX_DELAY`, drawn from the upper half of each ceiling.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import httpcore

from trio_s3rpc.s3.xml import S3Error

RETRY_BASE_DELAY = 0.2
RETRY_MAX_DELAY = 2.0

_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRYABLE_CODES = frozenset(
    {
        "InternalError",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeTooSkewed",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)
# These may answer 200 and report a failure in the body.
ERROR_IN_200_OPERATIONS = frozenset({"CompleteMultipartUpload", "CopyObject", "UploadPartCopy"})


def backoff_delay(
    retry: int,
    *,
    base: float = RETRY_BASE_DELAY,
    cap: float = RETRY_MAX_DELAY,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first retry).

    Exponential with "equal jitter": the ceiling doubles from ``base`` up to
    ``cap`` and the delay is drawn from its upper half, so no delay is ever
    tiny and the whole schedule keeps its length.
    """
    ceiling = min(cap, base * 2.0**retry)
    return ceiling / 2 + rng() * ceiling / 2


def retry_schedule(retries: int, *, rng: Callable[[], float] = random.random) -> list[float]:
    """The delays before each of ``retries`` retries. With the defaults (5 retries)
    they total 2.5 to 5 seconds, so an outage of a second or two is ridden out."""
    return [backoff_delay(retry, rng=rng) for retry in range(retries)]


class AttemptFailed(Exception):
    """One attempt's failure, with whether a retry is safe regardless of idempotence."""

    def __init__(self, error: S3Error, *, sent: bool, retryable: bool) -> None:
        super().__init__(error)
        self.error = error
        self.sent = sent
        self.retryable = retryable


def answer_failure(error: S3Error) -> AttemptFailed:
    """An error S3 answered, as an attempt's failure: retryable if the service was
    unavailable, throttling, or timing out."""
    retryable = error.status in _RETRYABLE_STATUSES or error.code in _RETRYABLE_CODES
    return AttemptFailed(error, sent=True, retryable=retryable)


def transport_failure(
    operation: str, exc: Exception, netloc: str, description: str
) -> AttemptFailed:
    """An httpcore exception (one of HTTP_ERRORS) as an attempt's failure, ``description``
    its text with any secret removed: the one place they become S3Error."""
    timeout = isinstance(exc, httpcore.TimeoutException)
    if isinstance(exc, httpcore.PoolTimeout):
        # Waiting longer for a busy pool is not a retry's job.
        return _failed(operation, "Timeout", f"no free connection: {description}", False, False)
    if isinstance(exc, httpcore.ConnectTimeout | httpcore.ConnectError):
        code = "Timeout" if timeout else "ConnectionError"
        return _failed(operation, code, f"cannot connect to {netloc}: {description}", False, True)
    if timeout:
        return _failed(operation, "Timeout", f"no answer in time: {description}", True, True)
    if isinstance(exc, httpcore.LocalProtocolError | httpcore.UnsupportedProtocol):
        # Our own request is wrong (a body shorter or longer than its
        # Content-Length, say): repeating it cannot help.
        return _failed(operation, "InvalidRequest", description, False, False)
    return _failed(operation, "ConnectionError", f"connection failed: {description}", True, True)


def _failed(operation: str, code: str, message: str, sent: bool, retryable: bool) -> AttemptFailed:
    return AttemptFailed(S3Error(operation, 0, code, message), sent=sent, retryable=retryable)
