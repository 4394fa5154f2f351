"""The one table: what the stream's and h11's failures become, phase by phase."""

from __future__ import annotations

import ssl

import h11
import httpcore
import pytest
import trio

from trio_s3rpc.s3.exceptions import CONNECTING, READING, WRITING, map_exceptions

CASES = [
    (CONNECTING, trio.TooSlowError("no connection within 10 s"), httpcore.ConnectTimeout),
    (CONNECTING, ConnectionRefusedError(111, "Connection refused"), httpcore.ConnectError),
    (CONNECTING, ssl.SSLCertVerificationError("certificate verify failed"), httpcore.ConnectError),
    (READING, trio.TooSlowError("no data within 30 s"), httpcore.ReadTimeout),
    (READING, trio.BrokenResourceError("[Errno 104] Connection reset by peer"), httpcore.ReadError),
    (READING, trio.ClosedResourceError("closed"), httpcore.ReadError),
    (READING, h11.RemoteProtocolError("illegal status line"), httpcore.RemoteProtocolError),
    (WRITING, trio.TooSlowError("could not write within 30 s"), httpcore.WriteTimeout),
    (WRITING, trio.BrokenResourceError("[Errno 32] Broken pipe"), httpcore.WriteError),
    (WRITING, h11.LocalProtocolError("Illegal header value"), httpcore.LocalProtocolError),
]


@pytest.mark.parametrize(("mapping", "failure", "expected"), CASES)
def test_each_failure_becomes_httpcores_type_with_its_message(
    mapping: map_exceptions, failure: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as raised:
        with mapping:
            raise failure
    assert type(raised.value) is expected
    assert str(raised.value) == str(failure)
    assert raised.value.__cause__ is failure


def test_a_failure_without_a_message_is_named_by_its_type() -> None:
    with pytest.raises(httpcore.ReadError, match=r"^BrokenResourceError$"):
        with READING:
            raise trio.BrokenResourceError


@pytest.mark.parametrize("failure", [ValueError("a caller's bug"), KeyboardInterrupt()])
def test_what_the_table_does_not_list_passes_unchanged(failure: BaseException) -> None:
    for mapping in (CONNECTING, READING, WRITING):
        with pytest.raises(type(failure)) as raised:
            with mapping:
                raise failure
        assert raised.value is failure


def test_h11_errors_are_mapped_only_in_their_own_phase() -> None:
    # A local protocol error while reading would be our bug, not the server's.
    with pytest.raises(h11.LocalProtocolError):
        with READING:
            raise h11.LocalProtocolError("not while reading")


async def test_cancellation_passes_unchanged() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        with READING:
            await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
