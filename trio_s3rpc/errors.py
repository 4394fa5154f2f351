"""The contract's error codes and their wire text.

Every failure a caller can see is an :class:`RPCError` carrying a code from
``rpc-api.md``, a human message and optional details. Only this module turns
one into the text that travels in an error frame, so the format
``CODE: message (details)`` is defined in exactly one place. Library
exceptions are mapped to ``RPCError`` where they enter our code.
"""

from __future__ import annotations

import enum
import logging
import uuid

log = logging.getLogger("trio_s3rpc")


class ErrorCode(enum.StrEnum):
    BUCKET_NOT_FOUND = "BUCKET_NOT_FOUND"
    FILE_NOT_FOUND = "FILE_NOT_FOUND"
    INVALID_CONFIG = "INVALID_CONFIG"
    S3_OPERATION_FAILED = "S3_OPERATION_FAILED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INVALID_PATHNAME = "INVALID_PATHNAME"
    BUCKET_ALREADY_EXISTS = "BUCKET_ALREADY_EXISTS"
    INVALID_VISIBILITY = "INVALID_VISIBILITY"
    OPERATION_TIMEOUT = "OPERATION_TIMEOUT"
    INVALID_REQUEST = "INVALID_REQUEST"
    METHOD_NOT_FOUND = "METHOD_NOT_FOUND"
    UPLOAD_NOT_FOUND = "UPLOAD_NOT_FOUND"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    CANCELLED = "CANCELLED"
    RELAY_UNAVAILABLE = "RELAY_UNAVAILABLE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    OBJECT_CHANGED = "OBJECT_CHANGED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class RPCError(Exception):
    """A failure with a contract code; what a PHP caller receives."""

    def __init__(self, code: ErrorCode, message: str, details: str = "") -> None:
        super().__init__(code, message, details)
        self.code = code
        self.message = message
        self.details = details

    def wire_text(self) -> str:
        text = f"{self.code.value}: {self.message}"
        if self.details:
            text += f" ({self.details})"
        return text

    def __str__(self) -> str:
        return self.wire_text()


class ChecksumMismatchError(RPCError):
    """Bytes read back that do not match the checksum stored with them (counted in metrics)."""


class PartialMoveError(RPCError):
    """A Move whose copy landed and whose source could not be deleted.

    Metrics count it, as the Go plugin does, as a copy that succeeded and a
    delete that failed.
    """


def internal_error(exc: BaseException, context: str) -> RPCError:
    """Log an unexpected exception with a fresh id and return the wire-safe error.

    The traceback goes to the server's log only; the caller gets the id so the
    two can be matched, never the traceback itself.
    """
    incident = uuid.uuid4().hex[:12]
    log.error("internal_error id=%s context=%s", incident, context, exc_info=exc)
    return RPCError(
        ErrorCode.INTERNAL_ERROR,
        "Unexpected server error; the server log has the details",
        f"id: {incident}",
    )
