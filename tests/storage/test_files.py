"""WriteFile and chunked uploads at S3's limits, against a fake transport (no network):
a 100 GiB file is sent in parts grown to fit 10,000, and uploads S3 could not hold are
refused before a byte is sent."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import trio

from tests.support.fake_s3 import fake_storage
from trio_s3rpc import progress
from trio_s3rpc.config import BucketConfig
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3.limits import MAX_OBJECT_SIZE, MAX_PARTS
from trio_s3rpc.storage.chunked import ChunkedUploads
from trio_s3rpc.storage.files import Files
from trio_s3rpc.storage.records import NewObject

MIB = 1024 * 1024
GIB = 1024 * MIB
DEFAULT_CONCURRENCY = BucketConfig(name="b", server="s", bucket="b").concurrency


async def test_a_100_gib_write_file_is_planned_within_10000_parts_and_aborted_when_a_part_fails(
    tmp_path: Path,
) -> None:
    source = tmp_path / "huge.bin"
    with source.open("wb") as sparse:
        sparse.truncate(100 * GIB)  # sparse: no disk space taken, reads are zeros
    storage, transport = fake_storage()  # the default 5 MiB parts: 10,000 of them hold 48.8 GiB
    transport.fails_after["UploadPart"] = 3  # the service goes down after three parts
    tracked = progress.Progress()
    token = progress.track(tracked)
    try:
        with pytest.raises(RPCError) as error:
            await Files([str(tmp_path)]).write_file(
                storage.resolve("", "huge.bin"), str(source), NewObject()
            )
    finally:
        progress.untrack(token)
        os.unlink(source)
    assert error.value.code is ErrorCode.S3_OPERATION_FAILED
    assert "ServiceUnavailable" in error.value.message
    # What TransferStatus shows: the whole file, in the parts WriteFile planned.
    assert tracked.bytes_total == 100 * GIB
    assert tracked.parts_total == -(-100 * GIB // (11 * MIB)) <= MAX_PARTS
    operations = transport.operations()
    assert operations[0] == "CreateMultipartUpload"
    parts = [sent for sent in transport.sent if sent.operation == "UploadPart"]
    # Each part is the grown part size: 100 GiB / 10,000 is 10.24 MiB, rounded up to 11.
    assert {sent.body_size for sent in parts} == {11 * MIB}
    assert sorted(int(sent.query["partNumber"]) for sent in parts) == list(range(1, len(parts) + 1))
    assert len(parts) <= 3 + 1 + DEFAULT_CONCURRENCY  # stopped at the failure, not read on
    # Nothing half-written is left: the upload is aborted, never completed.
    assert operations[-1] == "AbortMultipartUpload"
    assert transport.sent[-1].query["uploadId"] == "up-1"
    assert "CompleteMultipartUpload" not in operations


async def test_write_file_refuses_a_file_above_5_tib_before_any_request(tmp_path: Path) -> None:
    source = tmp_path / "huge.bin"
    with source.open("wb") as sparse:
        sparse.truncate(MAX_OBJECT_SIZE + 1)  # sparse: no disk space taken
    storage, transport = fake_storage()
    with pytest.raises(RPCError) as error:
        await Files([str(tmp_path)]).write_file(
            storage.resolve("", "huge.bin"), str(source), NewObject()
        )
    assert error.value.code is ErrorCode.INVALID_REQUEST
    assert "5 TiB" in error.value.message
    assert transport.sent == []
    os.unlink(source)


async def test_a_chunked_upload_takes_10000_parts_and_refuses_a_chunk_past_them() -> None:
    storage, transport = fake_storage()
    bucket = storage.bucket("b")
    # Tiny parts (the config allows 5 MiB at least) make the limit reachable here.
    bucket.config = dataclasses.replace(bucket.config, part_size=4, concurrency=50)
    limit = 4 * MAX_PARTS
    uploads = ChunkedUploads(storage, idle_timeout=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(uploads.run)
        upload_id = await uploads.start(storage.resolve("", "stream.bin"), NewObject())
        with pytest.raises(RPCError) as error:
            await uploads.chunk(upload_id, b"x" * (limit + 1), None)
        assert error.value.code is ErrorCode.INVALID_REQUEST
        assert str(limit) in error.value.message
        assert "UploadPart" not in transport.operations()  # nothing of that chunk was sent
        assert await uploads.chunk(upload_id, b"x" * limit, None) == limit
        with pytest.raises(RPCError) as error:
            await uploads.chunk(upload_id, b"x", None)
        assert error.value.code is ErrorCode.INVALID_REQUEST
        pathname, written = await uploads.finish(upload_id, limit)
        nursery.cancel_scope.cancel()
    assert (pathname, written.size) == ("stream.bin", limit)
    assert len(transport.parts) == MAX_PARTS
