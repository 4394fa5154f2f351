"""What a client learns back from the server, end to end on SeaweedFS and moto:
``s3.GetMetadata``'s user metadata, storage class and encryption, and each
bucket's visibility mode (``s3.GetBucketInfo``), so a client never has to be
told again what the server's configuration already says."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import MOTO_ACL_BUCKET
from tests.support.server import endpoint_server, running_app
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration


@pytest.fixture
async def rpc(seaweedfs: Any, moto: Any) -> AsyncIterator[RPCClient]:
    run = secrets.token_hex(4)
    config = {
        "rpc": {"listen": "tcp://127.0.0.1:0"},
        "s3": {
            "default": "sw",
            "servers": {"sw": endpoint_server(seaweedfs), "moto": endpoint_server(moto)},
            "buckets": {
                "sw": {
                    "server": "sw",
                    "bucket": "test-bucket",
                    "prefix": f"info-{run}/",
                    "visibility_mode": "none",
                    "visibility": "public",
                },
                "moto": {
                    "server": "moto",
                    "bucket": MOTO_ACL_BUCKET,
                    "prefix": f"info-{run}/",
                    "visibility_mode": "acl",
                },
                "probed": {
                    "server": "sw",
                    "bucket": "test-bucket",
                    "prefix": f"info-{run}/probed/",
                    "visibility_mode": "auto",
                },
            },
        },
    }
    async with running_app(config) as (_, address), await RPCClient.connect(address) as client:
        yield client


async def test_each_bucket_answers_its_visibility_mode_resolved(rpc: RPCClient) -> None:
    assert await rpc.call("s3.GetBucketInfo", {"bucket": "sw"}) == {
        "name": "sw",
        "visibility_mode": "none",
        "visibility": "public",
    }
    assert await rpc.call("s3.GetBucketInfo", {}) == await rpc.call(
        "s3.GetBucketInfo", {"bucket": "sw"}
    )
    moto = await rpc.call("s3.GetBucketInfo", {"bucket": "moto"})
    assert (moto["visibility_mode"], moto["visibility"]) == ("acl", "private")
    # auto: probed at this first use; SeaweedFS keeps no ACLs.
    probed = await rpc.call("s3.GetBucketInfo", {"bucket": "probed"})
    assert probed["visibility_mode"] == "none"
    with pytest.raises(RemoteError) as missing:
        await rpc.call("s3.GetBucketInfo", {"bucket": "nope"})
    assert missing.value.code == "BUCKET_NOT_FOUND"


@pytest.mark.parametrize("bucket", ["sw", "moto"])
async def test_user_metadata_comes_back_from_get_metadata_as_written(
    rpc: RPCClient, bucket: str
) -> None:
    metadata = {"owner": "ann", "note": "café ☕", "id-42": "x"}
    await rpc.call(
        "s3.Write",
        {
            "bucket": bucket,
            "pathname": "m.txt",
            "content": base64.b64encode(b"hi").decode(),
            "config": metadata,
        },
    )
    answer = await rpc.call("s3.GetMetadata", {"bucket": bucket, "pathname": "m.txt"})
    assert answer["config"] == metadata  # the server's own checksum is not among them
    assert answer["storage_class"] == "STANDARD"
    await rpc.call(
        "s3.Write",
        {"bucket": bucket, "pathname": "plain.txt", "content": base64.b64encode(b"x").decode()},
    )
    plain = await rpc.call("s3.GetMetadata", {"bucket": bucket, "pathname": "plain.txt"})
    assert "config" not in plain


@pytest.mark.parametrize("method", ["s3.Write", "s3.UploadStart"])
async def test_tagging_is_refused_by_name_not_ignored(rpc: RPCClient, method: str) -> None:
    args = {"bucket": "sw", "pathname": "tagged.txt", "tagging": "project=x"}
    if method == "s3.Write":
        args["content"] = base64.b64encode(b"x").decode()
    with pytest.raises(RemoteError) as refused:
        await rpc.call(method, args)
    assert refused.value.code == "INVALID_REQUEST"
    assert "field 'tagging' is not supported" in str(refused.value)
    assert not (await rpc.call("s3.Exists", {"bucket": "sw", "pathname": "tagged.txt"}))["exists"]
