"""Part planning at S3's edges: 10,000 parts, 5 TiB objects, the configured part size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc.config import BucketConfig
from trio_s3rpc.s3.limits import MAX_OBJECT_SIZE, MAX_PARTS
from trio_s3rpc.s3.parts import PartLimitError, plan_parts, upload_limit

MIB = 1024 * 1024
GIB = 1024 * MIB
TIB = 1024 * GIB
DEFAULT_PART_SIZE = BucketConfig(name="b", server="s", bucket="b").part_size


def assert_covers(size: int, part_size: int) -> None:
    plan = plan_parts(size, part_size)
    spans = list(plan.spans())
    assert len(spans) == plan.parts <= MAX_PARTS
    assert [number for number, _, _ in spans] == list(range(1, len(spans) + 1))
    offset = 0
    for _, start, length in spans:
        assert start == offset
        assert length == plan.part_size or start + length == size  # only the last is shorter
        offset += length
    assert offset == size


def test_a_100_gib_write_file_is_planned_within_10000_parts() -> None:
    # The call WriteFile makes for a 100 GiB file on a bucket with the default 5 MiB parts.
    plan = plan_parts(100 * GIB, DEFAULT_PART_SIZE)
    assert plan.parts <= MAX_PARTS
    assert plan.part_size == 11 * MIB  # 100 GiB / 10,000 is 10.24 MiB, rounded up to whole MiB
    assert_covers(100 * GIB, DEFAULT_PART_SIZE)


def test_a_5_tib_copy_is_planned_within_10000_parts_of_at_most_5_gib() -> None:
    plan = plan_parts(5 * TIB, DEFAULT_PART_SIZE)
    assert plan.parts <= MAX_PARTS
    assert plan.part_size <= 5 * GIB
    assert_covers(5 * TIB, DEFAULT_PART_SIZE)


def test_the_configured_part_size_is_kept_while_it_fits() -> None:
    assert plan_parts(MAX_PARTS * DEFAULT_PART_SIZE, DEFAULT_PART_SIZE).part_size == (
        DEFAULT_PART_SIZE
    )
    assert plan_parts(MAX_PARTS * DEFAULT_PART_SIZE, DEFAULT_PART_SIZE).parts == MAX_PARTS
    assert plan_parts(12 * MIB, DEFAULT_PART_SIZE).parts == 3


def test_one_byte_past_10000_parts_grows_the_part_size() -> None:
    plan = plan_parts(MAX_PARTS * DEFAULT_PART_SIZE + 1, DEFAULT_PART_SIZE)
    assert plan.part_size == DEFAULT_PART_SIZE + MIB
    assert plan.parts <= MAX_PARTS


def test_an_object_above_5_tib_is_refused() -> None:
    assert plan_parts(MAX_OBJECT_SIZE, DEFAULT_PART_SIZE).parts <= MAX_PARTS
    with pytest.raises(PartLimitError, match="5 TiB"):
        plan_parts(MAX_OBJECT_SIZE + 1, DEFAULT_PART_SIZE)


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_parts(-1, DEFAULT_PART_SIZE)
    with pytest.raises(ValueError):
        plan_parts(10, 0)


def test_a_chunked_upload_holds_10000_parts_and_at_most_5_tib() -> None:
    assert upload_limit(DEFAULT_PART_SIZE) == MAX_PARTS * DEFAULT_PART_SIZE
    assert upload_limit(5 * GIB) == MAX_OBJECT_SIZE


@given(
    size=st.integers(min_value=0, max_value=MAX_OBJECT_SIZE),
    part_size=st.integers(min_value=5 * MIB, max_value=5 * GIB),
)
def test_every_size_up_to_5_tib_fits(size: int, part_size: int) -> None:
    plan = plan_parts(size, part_size)
    assert plan.parts <= MAX_PARTS
    assert part_size <= plan.part_size <= 5 * GIB
    assert plan.parts * plan.part_size >= size
    if plan.part_size > part_size:  # grown only as far as needed, to whole MiB
        assert plan.part_size % MIB == 0
        assert -(-size // (plan.part_size - MIB)) > MAX_PARTS
