"""The memory budget's accounting: shares, holds, waits, refusals, the trim after a burst."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from trio_s3rpc.budget import FLOOR, TRIM_AFTER, Hold, MemoryBudget, current_hold, held, keep
from trio_s3rpc.errors import RPCError

MIB = 1024 * 1024


def test_a_share_counts_in_the_budget_and_holds_release_with_their_call() -> None:
    budget = MemoryBudget(64 * MIB, 16 * MIB, trim=False)
    share = budget.share()
    share.force(3 * MIB)  # a frame being received
    hold = Hold(share, 3 * MIB)
    hold.at_least(5 * MIB)  # its answer, once built
    assert (share.in_use, budget.in_use) == (5 * MIB, 5 * MIB)
    hold.release_all()
    assert (share.in_use, budget.in_use) == (0, 0)


def test_a_connection_under_the_floor_may_always_read() -> None:
    budget = MemoryBudget(64 * MIB, 16 * MIB, trim=False)
    budget.force(64 * MIB)  # everything held elsewhere
    quiet = budget.share()
    assert quiet.has_room(FLOOR)
    assert not quiet.has_room(FLOOR + 1)


async def test_more_than_a_share_is_refused_at_once_naming_the_limit() -> None:
    budget = MemoryBudget(64 * MIB, 16 * MIB, trim=False)
    hold = Hold(budget.share())
    with pytest.raises(RPCError) as refused:
        await hold.take(16 * MIB + 1, "s3.Read of big.bin")
    assert refused.value.code == "RESOURCE_EXHAUSTED"
    assert "s3.connection_memory" in refused.value.message
    assert budget.in_use == 0


async def test_a_take_waits_for_room_and_wakes_when_bytes_are_released() -> None:
    budget = MemoryBudget(64 * MIB, 16 * MIB, trim=False)
    share = budget.share()
    first, second = Hold(share), Hold(share)
    await first.take(12 * MIB, "a part")
    done = trio.Event()

    async def take_second() -> None:
        await second.take(8 * MIB, "a part")
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take_second)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set() and share.in_use == 12 * MIB
        first.release_all()
        await done.wait()
    assert share.in_use == 8 * MIB


async def test_keep_and_held_use_the_current_calls_hold_and_do_nothing_outside_one() -> None:
    budget = MemoryBudget(64 * MIB, 16 * MIB, trim=False)
    await keep(MIB, "outside a call")
    assert budget.in_use == 0
    hold = Hold(budget.share())
    token = current_hold.set(hold)
    try:
        await keep(2 * MIB, "a body")
        async with held(4 * MIB, "a part"):
            assert budget.in_use == 6 * MIB
        assert budget.in_use == 2 * MIB
    finally:
        current_hold.reset(token)
    hold.release_all()
    assert budget.in_use == 0


def test_take_now_refuses_retryably_when_the_budget_is_spent() -> None:
    budget = MemoryBudget(64 * MIB, 16 * MIB, trim=False)
    budget.force(60 * MIB)
    with pytest.raises(RPCError) as refused:
        budget.take_now(5 * MIB, "the tail of the chunked upload of a.bin")
    assert refused.value.code == "RESOURCE_EXHAUSTED"
    assert "s3.memory_limit" in refused.value.message and "retry" in refused.value.details
    budget.take_now(4 * MIB, "a smaller tail")
    assert budget.in_use == 64 * MIB


async def test_the_budget_falling_idle_after_a_burst_trims_the_heap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    budget = MemoryBudget(256 * MIB, 64 * MIB)
    if budget._trim is None:
        pytest.skip("not glibc: no malloc_trim")
    async with trio.open_nursery() as nursery:
        await nursery.start(budget.run)
        budget.force(TRIM_AFTER)
        budget.release(TRIM_AFTER - MIB)  # 1 MiB left: under IDLE_BELOW, so idle
        # The trims run in a thread, on the real clock, while the autojump clock races on:
        # bound the wait in real seconds, not in the mock clock's.
        deadline = time.monotonic() + 30
        while budget.trims < 2:
            assert time.monotonic() < deadline, f"{budget.trims} trims after 30 s"
            await trio.sleep(0.01)
        # Small traffic afterwards is no burst: no trim per call.
        budget.force(MIB)
        budget.release(2 * MIB)
        await trio.sleep(5)
        assert budget.trims == 2
        nursery.cancel_scope.cancel()
