"""The parts every instance agrees on, and the finish that refuses to be short (no network)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc.s3.xml import PartEntry
from trio_s3rpc.storage.chunked import committed_prefix, resend_refusal

PART = 8


def parts(spec: list[tuple[int, int]]) -> list[PartEntry]:
    return [PartEntry(number, f'"{number}"', size, 0) for number, size in spec]


def test_committed_prefix_stops_at_a_gap_or_a_short_part() -> None:
    assert committed_prefix(parts([(1, PART), (2, PART), (4, PART)]), PART) == parts(
        [(1, PART), (2, PART)]
    )
    assert committed_prefix(parts([(2, PART), (3, PART)]), PART) == []
    # A short part (a last part a refused finish left) is not whole.
    assert committed_prefix(parts([(1, PART), (2, 3), (3, PART)]), PART) == parts([(1, PART)])


@given(st.dictionaries(st.integers(1, 12), st.sampled_from([PART, PART, 3]), max_size=12))
def test_committed_prefix_is_whole_parts_one_to_n_in_any_listing_order(
    spec: dict[int, int],
) -> None:
    listed = parts(list(spec.items()))
    prefix = committed_prefix(listed, PART)
    assert [p.part_number for p in prefix] == list(range(1, len(prefix) + 1))
    assert all(p.size == PART for p in prefix)
    by_number = {p.part_number: p for p in listed}
    following = by_number.get(len(prefix) + 1)
    assert following is None or following.size != PART
    assert committed_prefix(list(reversed(listed)), PART) == prefix


def test_a_refusal_names_the_offset_to_resend_from() -> None:
    error = resend_refusal("offset 30 does not follow", 16, "a.bin")
    assert error.code.value == "INVALID_REQUEST"
    assert "resend from offset 16" in error.wire_text()
    assert "resend_from: 16" in error.wire_text()
