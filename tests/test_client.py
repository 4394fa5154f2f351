"""The Python client: codecs, pools, and a call interrupted half-way."""

from __future__ import annotations

import pytest
import trio

from tests.rpc.test_server import BUCKETS, Gathering, add_sleep_method
from tests.support.server import config_dict, running_app
from trio_s3rpc.client import RemoteError, RPCClient, RPCPool


async def test_pool_spreads_concurrent_calls_over_its_connections() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        # Calls finish only once four run at once: four connections each carry one.
        gathering = Gathering(app, 4)
        async with await RPCPool.connect(address, size=4, codec="msgpack") as pool:
            answers: list[object] = []
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    for index in range(8):
                        nursery.start_soon(
                            lambda i=index: _collect(pool, answers, {"seconds": 0, "tag": str(i)})
                        )
            assert gathering.peak == 4
            assert sorted(a["tag"] for a in answers) == [str(i) for i in range(8)]  # type: ignore[index]
            assert app.server.connection_count == 4


async def _collect(pool: RPCPool, answers: list[object], args: dict[str, object]) -> None:
    answers.append(await pool.call("test.Gather", args))


async def test_an_interrupted_call_leaves_the_connection_unusable_not_confused() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (app, address):
        add_sleep_method(app)
        async with await RPCClient.connect(address) as rpc:
            with trio.move_on_after(0.1):
                await rpc.call("test.Sleep", {"seconds": 0.5, "tag": "late"})
            # Its answer would arrive next; the client refuses instead of misreading it.
            with pytest.raises(trio.BrokenResourceError):
                await rpc.call("s3.ListBuckets")


async def test_remote_error_carries_the_code() -> None:
    async with running_app(config_dict(buckets=BUCKETS)) as (_, address):
        async with await RPCClient.connect(address) as rpc:
            with pytest.raises(RemoteError) as error:
                await rpc.call("s3.Read", {"bucket": "missing", "pathname": "x"})
    assert error.value.code == "BUCKET_NOT_FOUND"
    assert error.value.method == "s3.Read"
