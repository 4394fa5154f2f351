"""How often the janitor looks for stale uploads (no network)."""

from __future__ import annotations

import pytest

from trio_s3rpc.storage.janitor import reap_interval


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
