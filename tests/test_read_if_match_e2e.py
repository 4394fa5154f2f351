"""s3.Read bound to one version of an object (``if_match``), end to end on SeaweedFS.

A PHP stream reads an object in ranges; an overwrite of the same size within
the same second is invisible to size and ``last_modified``, so each range
carries the ETag of the first (``if_match``) and a replaced object answers
``OBJECT_CHANGED`` instead of bytes of the new version.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.server import config_dict, endpoint_server, running_app
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration


@pytest.fixture
async def rpc(seaweedfs: Any) -> AsyncIterator[RPCClient]:
    config = config_dict(
        endpoint_server(seaweedfs),
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": f"ifmatch-{secrets.token_hex(4)}/",
                "visibility_mode": "none",
            }
        },
    )
    async with running_app(config) as (_, address), await RPCClient.connect(address) as client:
        yield client


async def write(rpc: RPCClient, pathname: str, content: bytes) -> None:
    await rpc.call(
        "s3.Write",
        {"bucket": "uploads", "pathname": pathname, "content": base64.b64encode(content).decode()},
    )


async def test_a_range_of_the_same_version_is_answered_with_its_etag(rpc: RPCClient) -> None:
    await write(rpc, "v.bin", b"A" * 1000)
    first = await rpc.call(
        "s3.Read", {"bucket": "uploads", "pathname": "v.bin", "offset": 0, "length": 100}
    )
    assert first["etag"]
    second = await rpc.call(
        "s3.Read",
        {
            "bucket": "uploads",
            "pathname": "v.bin",
            "offset": 100,
            "length": 100,
            "if_match": first["etag"],
        },
    )
    assert base64.b64decode(second["content"]) == b"A" * 100
    assert second["etag"] == first["etag"]


@pytest.mark.parametrize(
    "offset, length",
    [(500, 100), (5000, 100), (0, 0), (0, None)],
    ids=["range", "past-the-end", "no-bytes", "whole"],
)
async def test_an_overwrite_of_the_same_size_in_the_same_second_is_object_changed(
    rpc: RPCClient, offset: int, length: int | None
) -> None:
    # Same size, same second: what a size and last_modified guard cannot tell apart.
    # The two writes may straddle a second's boundary; then try again.
    for _ in range(5):
        await write(rpc, "v.bin", b"A" * 1000)
        first = await rpc.call(
            "s3.Read", {"bucket": "uploads", "pathname": "v.bin", "offset": 0, "length": 100}
        )
        await write(rpc, "v.bin", b"B" * 1000)
        again = await rpc.call(
            "s3.Read", {"bucket": "uploads", "pathname": "v.bin", "offset": 0, "length": 1}
        )
        if again["last_modified"] == first["last_modified"]:
            break
    assert (again["size"], again["last_modified"]) == (first["size"], first["last_modified"])
    args: dict[str, Any] = {"bucket": "uploads", "pathname": "v.bin", "offset": offset}
    if length is not None:
        args["length"] = length
    with pytest.raises(RemoteError) as changed:
        await rpc.call("s3.Read", {**args, "if_match": first["etag"]})
    assert changed.value.code == "OBJECT_CHANGED"
    assert "pathname: v.bin" in str(changed.value)
    assert first["etag"] in str(changed.value)


async def test_an_if_match_that_is_not_a_header_value_is_refused(rpc: RPCClient) -> None:
    await write(rpc, "v.bin", b"A" * 10)
    hostile = '"abc"\r\nx-amz-copy-source: other/key'
    with pytest.raises(RemoteError) as refused:
        await rpc.call("s3.Read", {"bucket": "uploads", "pathname": "v.bin", "if_match": hostile})
    assert refused.value.code == "INVALID_REQUEST"
    assert "if_match" in str(refused.value)
