"""Copy planned within S3's limits, against a fake transport (no network).

The end-to-end Copy tests run against SeaweedFS; a 5 TiB object is only
possible here, where the fake service holds sizes, not bytes.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support.fake_s3 import fake_storage
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3.limits import MAX_OBJECT_SIZE, MAX_PARTS
from trio_s3rpc.storage import copies
from trio_s3rpc.storage.records import NewObject

MIB = 1024**2
TIB = 1024**4


async def test_a_5_tib_copy_is_sent_in_at_most_10000_parts_covering_every_byte() -> None:
    # Through Copy's own path: HeadObject, then UploadPartCopy in the parts it planned.
    storage, transport = fake_storage()
    transport.sizes["huge.bin"] = 5 * TIB
    source, dest = storage.resolve("", "huge.bin"), storage.resolve("", "copy.bin")
    info = await copies.copy(source, dest, NewObject())
    parts = [sent for sent in transport.sent if sent.operation == "UploadPartCopy"]
    assert 0 < len(parts) <= MAX_PARTS
    assert [int(sent.query["partNumber"]) for sent in parts] == list(range(1, len(parts) + 1))
    ranges = [sent.headers["x-amz-copy-source-range"].removeprefix("bytes=") for sent in parts]
    ends = [tuple(int(n) for n in text.split("-")) for text in ranges]
    assert ends[0][0] == 0 and ends[-1][1] == 5 * TIB - 1
    assert all(later[0] == earlier[1] + 1 for earlier, later in itertools.pairwise(ends))
    # The copy path grew the part size: 5 TiB / 10,000 is 524.3 MiB, rounded up to 525.
    lengths = [end - start + 1 for start, end in ends]
    assert set(lengths[:-1]) == {525 * MIB} and lengths[-1] <= 525 * MIB
    assert transport.operations()[-1] == "CompleteMultipartUpload"
    assert info.size == 5 * TIB


async def test_a_copy_of_an_object_above_5_tib_is_refused_before_an_upload_starts() -> None:
    storage, transport = fake_storage()
    transport.sizes["too-big.bin"] = MAX_OBJECT_SIZE + 1
    source, dest = storage.resolve("", "too-big.bin"), storage.resolve("", "copy.bin")
    with pytest.raises(RPCError) as error:
        await copies.copy(source, dest, NewObject())
    assert error.value.code is ErrorCode.INVALID_REQUEST
    assert "5 TiB" in error.value.message
    assert transport.operations() == ["HeadObject"]


async def test_a_5_tib_copy_whose_part_fails_is_aborted_not_completed() -> None:
    storage, transport = fake_storage()
    transport.sizes["huge.bin"] = 5 * TIB
    transport.fails_after["UploadPartCopy"] = 3
    source, dest = storage.resolve("", "huge.bin"), storage.resolve("", "copy.bin")
    with pytest.raises(RPCError) as error:
        await copies.copy(source, dest, NewObject())
    assert error.value.code is ErrorCode.S3_OPERATION_FAILED
    operations = transport.operations()
    assert operations[-1] == "AbortMultipartUpload"
    assert "CompleteMultipartUpload" not in operations
    assert operations.count("UploadPartCopy") < 20  # stopped at the failure
