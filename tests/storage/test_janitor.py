"""The janitor: how often it looks for stale uploads, and the aborts it retries (no network)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.support.fake_s3 import fake_storage
from trio_s3rpc.s3 import multipart
from trio_s3rpc.storage.janitor import Janitor, reap_interval


@pytest.mark.parametrize(
    ("stale_after", "interval"),
    [
        (0.5, 1.0),  # never busier than once a second
        (2.0, 1.0),
        (60.0, 30.0),  # twice per age: a stale upload waits at most 1.5 x its age
        (7200.0, 3600.0),
        (86400.0, 3600.0),  # at most hourly
    ],
)
def test_reap_interval(stale_after: float, interval: float) -> None:
    assert reap_interval(stale_after) == interval


async def test_an_abort_that_failed_is_queued_in_the_book_and_retried_until_it_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    storage, transport = fake_storage()
    transport.failures["AbortMultipartUpload"] = 2  # the abort itself, then the first retry
    janitor = Janitor(storage, stale_after=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(janitor.run)
        await multipart.abort_upload(storage.bucket("b").multipart("k", {}), "up-1")
        assert janitor.pending_aborts == 1
        while janitor.pending_aborts:
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    aborts = [sent for sent in transport.sent if sent.operation == "AbortMultipartUpload"]
    assert [(sent.key, sent.query["uploadId"]) for sent in aborts] == [("k", "up-1")] * 3
