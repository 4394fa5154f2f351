"""transfer_id, timeout, s3.TransferStatus and s3.Cancel over real sockets.

A test-only method that sleeps and reports progress stands in for a long
transfer here; the end-to-end tests drive real WriteFile transfers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio

from tests.support.server import config_dict, running_app
from trio_s3rpc import progress
from trio_s3rpc.client import RemoteError, RPCClient

BUCKETS = {"uploads": {"bucket": "bkt1"}}


@dataclass(slots=True, frozen=True)
class StepsRequest:
    steps: int
    step_seconds: float = 0.05


@dataclass(slots=True, frozen=True)
class StepsResponse:
    done: int


def add_steps_method(
    app: object, cleanups: list[str], gate: trio.MemorySendChannel[None] | None = None
) -> None:
    """``test.Steps``: ``steps`` steps of 100 bytes each; a step waits ``step_seconds``,
    or, with ``gate``, until the test receives from the gate's other end."""

    async def steps(req: StepsRequest) -> StepsResponse:
        tracker = progress.current()
        tracker.expect(req.steps * 100, req.steps)
        try:
            for _ in range(req.steps):
                if gate is None:
                    await trio.sleep(req.step_seconds)
                else:
                    await gate.send(None)
                tracker.advance(100, 1)
        except trio.Cancelled:
            cleanups.append("cancelled")  # where a multipart upload would abort
            raise
        return StepsResponse(req.steps)

    app.registry.add("test.Steps", StepsRequest, StepsResponse, steps)  # type: ignore[attr-defined]


async def test_status_poll_from_another_connection_sees_progress_rise() -> None:
    # The transfer advances one step each time the test lets it, so what the
    # poll sees depends on the steps taken, not on how busy the machine is.
    step_gate, steps_taken = trio.open_memory_channel[None](0)
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        add_steps_method(app, [], gate=step_gate)
        async with (
            await RPCClient.connect(address) as worker,
            await RPCClient.connect(address) as watcher,
        ):
            seen: list[int] = []
            async with trio.open_nursery() as nursery:
                result: list[object] = []

                async def transfer() -> None:
                    result.append(
                        await worker.call("test.Steps", {"steps": 20, "transfer_id": "job-1"})
                    )

                nursery.start_soon(transfer)
                for _ in range(8):
                    # Two steps a poll: wait until the method has taken the second.
                    await steps_taken.receive()
                    await steps_taken.receive()
                    status = await watcher.call("s3.TransferStatus", {"transfer_id": "job-1"})
                    seen.append(status["bytes_done"])
                    assert status["state"] == "running"
                    assert status["bytes_total"] == 2000
                    assert status["parts_total"] == 20
                    assert status["method"] == "test.Steps"
                for _ in range(4):
                    await steps_taken.receive()
            assert result == [{"done": 20}]
            # After 2k steps the method has advanced for the first 2k-1 (the
            # step taken last may not have reported yet): progress only rises.
            assert seen == sorted(seen) and seen[-1] > seen[0] > 0
            assert seen[-1] >= 1500
            final = await watcher.call("s3.TransferStatus", {"transfer_id": "job-1"})
            assert final["state"] == "completed"
            assert final["bytes_done"] == final["bytes_total"] == 2000
            assert final["finished_at"] >= final["started_at"]


async def test_cancel_stops_a_transfer_within_a_second() -> None:
    cleanups: list[str] = []
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        add_steps_method(app, cleanups)
        async with (
            await RPCClient.connect(address) as worker,
            await RPCClient.connect(address) as controller,
        ):
            errors: list[RemoteError] = []
            async with trio.open_nursery() as nursery:

                async def transfer() -> None:
                    try:
                        await worker.call("test.Steps", {"steps": 1000, "transfer_id": "job-2"})
                    except RemoteError as exc:
                        errors.append(exc)

                nursery.start_soon(transfer)
                await trio.sleep(0.2)
                answer = await controller.call("s3.Cancel", {"transfer_id": "job-2"})
                assert answer == {"success": True, "state": "cancelling"}
            assert [e.code for e in errors] == ["CANCELLED"]
            assert cleanups == ["cancelled"]
            status = await controller.call("s3.TransferStatus", {"transfer_id": "job-2"})
            assert status["state"] == "cancelled"
            assert status["parts_done"] < 1000  # stopped, not run to the end
            # Cancelling what already ended says so instead of failing.
            again = await controller.call("s3.Cancel", {"transfer_id": "job-2"})
            assert again == {"success": False, "state": "cancelled"}
            # The worker's connection is still usable.
            assert (await worker.call("s3.ListBuckets"))["default"] == "uploads"


async def test_timeout_answers_operation_timeout() -> None:
    cleanups: list[str] = []
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        add_steps_method(app, cleanups)
        async with await RPCClient.connect(address) as rpc:
            with pytest.raises(RemoteError) as error:
                await rpc.call("test.Steps", {"steps": 1000, "timeout": 0.3})
            assert error.value.code == "OPERATION_TIMEOUT"
            assert "0.3" in error.value.text
            assert cleanups == ["cancelled"]
            # A timeout that is not reached changes nothing.
            assert await rpc.call("test.Steps", {"steps": 2, "timeout": 5}) == {"done": 2}


async def test_bad_control_fields_and_unknown_ids_are_clear() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        add_steps_method(app, [])
        async with await RPCClient.connect(address) as rpc:
            for bad in ({"timeout": -1}, {"timeout": "soon"}, {"transfer_id": 5}):
                with pytest.raises(RemoteError) as error:
                    await rpc.call("test.Steps", {"steps": 1, **bad})
                assert error.value.code == "INVALID_REQUEST"
                assert next(iter(bad)) in error.value.text
            for method in ("s3.TransferStatus", "s3.Cancel"):
                with pytest.raises(RemoteError) as error:
                    await rpc.call(method, {"transfer_id": "never-started"})
                assert error.value.code == "INVALID_REQUEST"
                assert "never-started" in error.value.text


async def test_a_running_transfer_id_cannot_be_reused() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        add_steps_method(app, [])
        async with (
            await RPCClient.connect(address) as first,
            await RPCClient.connect(address) as second,
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(first.call, "test.Steps", {"steps": 5, "transfer_id": "dup"})
                await trio.sleep(0.05)
                with pytest.raises(RemoteError) as error:
                    await second.call("test.Steps", {"steps": 1, "transfer_id": "dup"})
                assert error.value.code == "INVALID_REQUEST"
            # Once finished, the id may be used again.
            assert await second.call("test.Steps", {"steps": 1, "transfer_id": "dup"}) == {
                "done": 1
            }
