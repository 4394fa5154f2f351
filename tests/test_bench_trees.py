"""The before/after comparison of benchmarks/trees.py: medians over rounds and their ratio."""

from __future__ import annotations

from benchmarks.trees import compare


def test_the_ratio_is_of_the_medians_and_an_outlier_round_does_not_move_it() -> None:
    row = compare("Read 4KiB x16", "ops/s", [100.0, 10.0, 102.0], [98.0, 100.0, 400.0], 0.03)
    assert (row.this, row.peer) == (100.0, 100.0)
    assert row.ratio == 1.0
    assert row.within is True


def test_a_change_beyond_the_bound_is_reported_outside_it_either_way() -> None:
    slower = compare("WriteFile 1GiB", "MiB/s", [90.0, 94.0], [100.0, 100.0], 0.05)
    faster = compare("WriteFile 1GiB", "MiB/s", [106.0], [100.0], 0.05)
    assert slower.this == 92.0
    assert slower.within is False
    assert faster.within is False


def test_cpu_medians_skip_unknown_rounds() -> None:
    row = compare("ListBuckets x16", "ops/s", [1.0], [1.0], 0.03, [None, 50.0, 70.0], [None])
    assert row.this_cpu == 60.0
    assert row.peer_cpu is None
