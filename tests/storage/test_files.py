"""Uploads S3 could not hold are refused before a byte is sent (fake transport, no network)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import trio

from tests.support.fake_s3 import fake_storage
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3.parts import MAX_OBJECT_SIZE, MAX_PARTS
from trio_s3rpc.storage.chunked import ChunkedUploads
from trio_s3rpc.storage.files import Files
from trio_s3rpc.storage.records import NewObject


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
