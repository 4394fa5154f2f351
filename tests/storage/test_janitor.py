"""The janitor: how often it looks for stale uploads, and the aborts it retries (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.testing

from tests.support.fake_s3 import fake_storage
from trio_s3rpc.s3 import multipart
from trio_s3rpc.s3.multipart import BusyUploads
from trio_s3rpc.storage.chunked import ChunkedUploads
from trio_s3rpc.storage.janitor import Janitor, reap_interval
from trio_s3rpc.storage.records import NewObject


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


async def _upload_one_part(target: multipart.MultipartTarget) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"part"

    await multipart.upload_multipart(target, parts(), concurrency=1)


async def test_an_upload_whose_create_is_not_yet_answered_is_not_reaped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The service has made the upload, and the reaper lists it as stale (moto lists every
    upload as made in 2010), but its id has not reached the upload yet: it is left alone
    and completes (the CI flake: the startup round aborted a copy's new upload)."""
    storage, transport = fake_storage()
    answered = trio.Event()
    transport.holds["CreateMultipartUpload"] = answered
    janitor = Janitor(storage, stale_after=3600)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_upload_one_part, storage.bucket("b").multipart("k", {}))
        while not transport.uploads:  # the create has reached the service
            await trio.lowlevel.checkpoint()
        assert await janitor.reap_once() == []
        answered.set()
    assert "AbortMultipartUpload" not in transport.operations()
    assert transport.operations()[-1] == "CompleteMultipartUpload"
    assert transport.uploads == {}
    assert storage.book.in_progress == set()


async def test_an_upload_created_and_not_yet_sending_parts_is_not_reaped() -> None:
    """Between the create and the parts (a resumable WriteFile sends its marker and looks
    for rivals there) the upload is the caller's; an abort ends that."""
    storage, transport = fake_storage()
    janitor = Janitor(storage, stale_after=3600)
    target = storage.bucket("b").multipart("k", {})
    upload_id = await multipart.create_upload(target)
    assert await janitor.reap_once() == []
    assert transport.uploads == {upload_id: "k"}
    await multipart.abort_upload(target, upload_id)
    assert storage.book.in_progress == set()


async def test_a_stale_upload_nobody_works_on_is_reaped() -> None:
    storage, transport = fake_storage()
    transport.uploads["up-1"] = "left-by-a-crash"
    janitor = Janitor(storage, stale_after=3600)
    assert await janitor.reap_once() == ["left-by-a-crash"]
    assert transport.uploads == {}


async def test_a_started_chunked_upload_is_kept_from_the_reaper_by_its_session() -> None:
    """UploadStart hands the new upload from the book to its session (which the reaper
    asks through ``elsewhere``), so the book keeps no id of an upload left to resume."""
    storage, transport = fake_storage()
    uploads = ChunkedUploads(storage, idle_timeout=60)
    await uploads.start(storage.bucket("b").ref("c.bin"), NewObject())
    assert uploads.working_on() == {"up-1"}
    assert storage.book.in_progress == set()
    janitor = Janitor(
        storage,
        stale_after=3600,
        elsewhere=_async_value(lambda: BusyUploads(frozenset(uploads.working_on()))),
    )
    assert await janitor.reap_once() == []
    assert transport.uploads == {"up-1": "c.bin"}


async def test_an_upload_another_worker_is_creating_is_not_reaped() -> None:
    """Under workers the reaper (in worker 0) asks the others what they work on. An upload
    whose create another worker has sent and not yet seen answered has no id there, only
    its key; the service may list it already (moto as made in 2010): it is spared by that
    key, in the service's bucket, and nothing else is."""
    storage, transport = fake_storage()
    transport.uploads["up-7"] = "k"
    transport.uploads["up-8"] = "left-by-a-crash"
    creating = BusyUploads(creating=frozenset({("bkt", "k"), ("other-bucket", "left-by-a-crash")}))
    janitor = Janitor(storage, stale_after=3600, elsewhere=_async_value(lambda: creating))
    assert await janitor.reap_once() == ["left-by-a-crash"]
    assert transport.uploads == {"up-7": "k"}


async def test_a_round_in_which_a_worker_cannot_say_aborts_nothing() -> None:
    storage, transport = fake_storage()
    transport.uploads["up-8"] = "left-by-a-crash"
    janitor = Janitor(storage, stale_after=3600, elsewhere=_async_value(lambda: None))
    assert await janitor.reap_once() == []
    assert transport.uploads == {"up-8": "left-by-a-crash"}


def _async_value(
    get: Callable[[], BusyUploads | None],
) -> Callable[[], Awaitable[BusyUploads | None]]:
    async def value() -> BusyUploads | None:
        return get()

    return value
