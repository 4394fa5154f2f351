"""``s3.DeleteMany`` end to end: batches of 1000 keys, per-key errors, whole-batch failures.

2,500 objects on SeaweedFS go in three DeleteObjects requests, each carrying
the Content-MD5 S3 requires (seen by a recording proxy). Pathnames succeed or
fail one by one: an invalid one is reported with ``INVALID_PATHNAME`` while
the rest are deleted, and a key the service refuses (a moto bucket policy
denying s3:DeleteObject under ``protected/``) comes back as
``PERMISSION_DENIED`` with the service's own code.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import admin_client
from tests.test_visibility_e2e import app_behind_proxy, heads
from trio_s3rpc.client import RemoteError, RPCClient, RPCPool

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def prefix() -> str:
    return f"dm-{secrets.token_hex(4)}/"


async def write_many(address: str, pathnames: list[str]) -> None:
    async with await RPCPool.connect(address, size=16) as pool:
        in_flight = trio.CapacityLimiter(16)

        async def write(pathname: str) -> None:
            async with in_flight:
                await pool.call("s3.Write", {"pathname": pathname, "content": b64(b"x")})

        async with trio.open_nursery() as nursery:
            for pathname in pathnames:
                nursery.start_soon(write, pathname)


async def listed(rpc: RPCClient, prefix: str = "") -> list[str]:
    keys: list[str] = []
    token = ""
    while True:
        args: dict[str, Any] = {"prefix": prefix}
        if token:
            args["continuation_token"] = token
        page = await rpc.call("s3.ListObjects", args)
        keys += [item["key"] for item in page["objects"]]
        if not page["is_truncated"]:
            return keys
        token = page["next_continuation_token"]


async def test_2500_keys_in_three_requests_with_invalid_ones_reported(
    seaweedfs: Any, prefix: str, tmp_path: Path
) -> None:
    pathnames = [f"many/{index:04d}.txt" for index in range(2500)]
    bucket = {"bucket": "test-bucket", "prefix": prefix, "visibility_mode": "none"}
    async with app_behind_proxy(seaweedfs, {"uploads": bucket}, tmp_path) as (rpc, proxy):
        await write_many(rpc.address, pathnames)
        assert len(await listed(rpc, "many/")) == 2500
        invalid = ["", "/absolute.txt", "a/../escape.txt"]
        asked = [*pathnames[:10], invalid[0], *pathnames[10:], *invalid[1:], "never/written.txt"]
        sent_before = len(proxy.requests)
        answer = await rpc.call("s3.DeleteMany", {"pathnames": asked})

        assert answer["deleted"] == [*pathnames, "never/written.txt"]
        assert [(e["pathname"], e["code"]) for e in answer["errors"]] == [
            (pathname, "INVALID_PATHNAME") for pathname in invalid
        ]
        assert "must not start with '/'" in answer["errors"][1]["message"]
        assert await listed(rpc, "many/") == []
        batches = [h for h in heads(proxy)[sent_before:] if h.target.endswith("?delete=")]
        assert len(batches) == 3
        assert all(h.method == "POST" and h.headers.get("content-md5") for h in batches)


async def test_a_key_the_service_refuses_is_reported_alone(
    moto: Any, prefix: str, tmp_path: Path
) -> None:
    bucket_name = f"dm-policy-{secrets.token_hex(3)}"
    client = admin_client(moto)
    client.create_bucket(Bucket=bucket_name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteObject",
                "Resource": f"arn:aws:s3:::{bucket_name}/{prefix}protected/*",
            }
        ],
    }
    client.put_bucket_policy(Bucket=bucket_name, Policy=json.dumps(policy))
    bucket = {"bucket": bucket_name, "prefix": prefix, "visibility_mode": "none"}
    async with app_behind_proxy(moto, {"uploads": bucket}, tmp_path) as (rpc, _):
        names = ["free/a.txt", "protected/b.txt", "free/c.txt"]
        for name in names:
            await rpc.call("s3.Write", {"pathname": name, "content": b64(b"x")})
        answer = await rpc.call("s3.DeleteMany", {"pathnames": names})
        assert answer["deleted"] == ["free/a.txt", "free/c.txt"]
        [error] = answer["errors"]
        assert error["pathname"] == "protected/b.txt"
        assert error["code"] == "PERMISSION_DENIED"
        assert "AccessDenied" in error["message"]
        assert await listed(rpc) == ["protected/b.txt"]


async def test_a_failed_request_reports_every_key_of_its_batch(seaweedfs: Any, prefix: str) -> None:
    server = endpoint_server(seaweedfs)
    server["credentials"] = {"key": seaweedfs.access_key, "secret": "not-the-secret"}
    config = config_dict(
        server, {"uploads": {"bucket": "test-bucket", "prefix": prefix, "visibility_mode": "none"}}
    )
    async with running_app(config) as (_, address), await RPCClient.connect(address) as rpc:
        answer = await rpc.call("s3.DeleteMany", {"pathnames": ["a.txt", "b.txt", "../c"]})
        assert answer["deleted"] == []
        assert [(e["pathname"], e["code"]) for e in answer["errors"]] == [
            ("a.txt", "PERMISSION_DENIED"),
            ("b.txt", "PERMISSION_DENIED"),
            ("../c", "INVALID_PATHNAME"),
        ]
        assert "not-the-secret" not in json.dumps(answer)
        assert await rpc.call("s3.DeleteMany", {"pathnames": []}) == {"deleted": [], "errors": []}
        for args, code in [
            ({"bucket": "nope", "pathnames": ["a"]}, "BUCKET_NOT_FOUND"),
            ({"pathnames": "a.txt"}, "INVALID_REQUEST"),
            ({"pathnames": ["a", 1]}, "INVALID_REQUEST"),
            ({}, "INVALID_REQUEST"),
        ]:
            with pytest.raises(RemoteError) as failure:
                await rpc.call("s3.DeleteMany", args)
            assert failure.value.code == code, args
