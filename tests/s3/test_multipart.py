"""A multipart upload leaves nothing behind, even when cancelled mid-request (no network)."""

from __future__ import annotations

import trio

from tests.support.fake_s3 import fake_storage
from trio_s3rpc.s3 import multipart


async def test_a_call_cancelled_while_the_upload_is_being_created_aborts_it() -> None:
    storage, transport = fake_storage()
    created = transport.holds["CreateMultipartUpload"] = trio.Event()
    target = storage.bucket("b").multipart("k", {})
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as call:

            async def cancel_once_sent() -> None:
                while transport.operations() != ["CreateMultipartUpload"]:
                    await trio.lowlevel.checkpoint()
                call.cancel()  # the call ends while the service is creating the upload
                await trio.sleep(0.01)
                created.set()  # the service answers with the new upload's id

            nursery.start_soon(cancel_once_sent)
            await multipart.create_upload(target)
    assert call.cancelled_caught
    aborts = [sent for sent in transport.sent if sent.operation == "AbortMultipartUpload"]
    assert [(sent.key, sent.query["uploadId"]) for sent in aborts] == [("k", "up-1")]
