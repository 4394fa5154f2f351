"""A multipart upload leaves nothing behind, even when cancelled mid-request (no network)."""

from __future__ import annotations

import hashlib

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


# Captured from Ceph RGW 16.2.15: one part's ETag, and the object's after completion.
RGW_PART_ETAG = '"aed563ecafb4bcc5654c597a421547b2"'
RGW_OBJECT_ETAG = '"bccb8986cc6b395e4f045d410c776698-1"'


def test_the_multipart_etag_is_computed_as_the_services_compute_it() -> None:
    assert multipart.multipart_etag({1: RGW_PART_ETAG}) == RGW_OBJECT_ETAG
    three = {number: f'"{number:032x}"' for number in (3, 1, 2)}  # in part order
    digest = hashlib.md5(b"".join(bytes.fromhex(f"{n:032x}") for n in (1, 2, 3))).hexdigest()
    assert multipart.multipart_etag(three) == f'"{digest}-3"'
    assert multipart.multipart_etag({1: '"part"'}) is None  # not an MD5: not computed


async def test_an_empty_etag_in_the_complete_answer_is_learned_by_a_head() -> None:
    storage, transport = fake_storage()
    transport.complete_etag = ""
    transport.head_etag = RGW_OBJECT_ETAG
    target = storage.bucket("b").multipart("k", {})
    etag = await multipart.complete_upload(target, "up-1", {1: RGW_PART_ETAG})
    assert etag == RGW_OBJECT_ETAG
    assert transport.operations() == ["CompleteMultipartUpload", "HeadObject"]
    # Part ETags that are not MD5s: the HEAD's is all there is.
    transport.head_etag = '"opaque"'
    assert await multipart.complete_upload(target, "up-1", {1: '"part"'}) == '"opaque"'


async def test_an_object_replaced_before_the_head_does_not_lend_its_etag() -> None:
    """Another write between the completion and the HEAD: the upload's own ETag is
    answered, so the checksum's conditional self-copy leaves the other object alone."""
    storage, transport = fake_storage()
    transport.complete_etag = ""
    transport.head_etag = '"0123456789abcdef0123456789abcdef"'  # someone else's PutObject
    target = storage.bucket("b").multipart("k", {})
    assert await multipart.complete_upload(target, "up-1", {1: RGW_PART_ETAG}) == RGW_OBJECT_ETAG


async def test_a_complete_answer_with_its_etag_needs_no_head() -> None:
    storage, transport = fake_storage()
    target = storage.bucket("b").multipart("k", {})
    assert await multipart.complete_upload(target, "up-1", {1: RGW_PART_ETAG}) == '"whole-2"'
    assert transport.operations() == ["CompleteMultipartUpload"]
