"""Nothing left behind, against SeaweedFS: the stale-upload reaper and retried aborts."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.proxy import TCPProxy
from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import admin_client, open_uploads
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


async def test_reaper_aborts_stale_uploads_made_behind_the_servers_back(seaweedfs: Any) -> None:
    prefix = f"reap-{secrets.token_hex(4)}/"
    admin = admin_client(seaweedfs)
    admin.create_multipart_upload(Bucket="test-bucket", Key=prefix + "orphan.bin")
    # Outside every bucket prefix: not ours to touch.
    outside = f"not-ours-{secrets.token_hex(4)}/orphan.bin"
    foreign = admin.create_multipart_upload(Bucket="test-bucket", Key=outside)
    assert open_uploads(seaweedfs, prefix) == [prefix + "orphan.bin"]
    config = config_dict(
        endpoint_server(seaweedfs),
        {"uploads": {"bucket": "test-bucket", "prefix": prefix, "visibility_mode": "none"}},
        s3={"abort_stale_after": "1s"},
    )
    await trio.sleep(1.1)  # older than abort_stale_after by the time the server looks
    async with running_app(config) as (app, _):
        with trio.fail_after(10):
            while open_uploads(seaweedfs, prefix):
                await trio.sleep(0.2)
        assert app.janitor.reaped == [prefix + "orphan.bin"]
    try:
        assert open_uploads(seaweedfs, "not-ours-") == [outside]
    finally:
        admin.abort_multipart_upload(
            Bucket="test-bucket", Key=outside, UploadId=foreign["UploadId"]
        )


async def test_an_abort_that_fails_is_retried_until_it_lands(
    seaweedfs: Any, tmp_path: Path
) -> None:
    prefix = f"retry-{secrets.token_hex(4)}/"
    host, port = seaweedfs.endpoint.removeprefix("http://").split(":")
    proxy = TCPProxy(host, int(port))
    source = tmp_path / "big.bin"
    source.write_bytes(secrets.token_bytes(11 * MIB))
    async with trio.open_nursery() as nursery:
        proxy_port = await proxy.start(nursery)
        server = endpoint_server(seaweedfs)
        server["endpoint"] = f"http://127.0.0.1:{proxy_port}"
        config = config_dict(
            server,
            {"uploads": {"bucket": "test-bucket", "prefix": prefix, "visibility_mode": "none"}},
            s3={"local_roots": [str(tmp_path)], "abort_stale_after": 0},
        )
        async with running_app(config) as (app, address):
            for transport in app.storage._transports.values():
                transport.retry_attempts = 1
            async with await RPCClient.connect(address) as rpc:

                async def outage_after_first_part() -> None:
                    # Let the upload begin, then take the service away entirely: as
                    # soon as the first part's head passes the proxy (polling the
                    # service instead left a window in which a fast upload finished).
                    while not any(b"partNumber=" in head for head in proxy.requests):
                        await trio.lowlevel.checkpoint()
                    proxy.refuse = True
                    proxy.cut_all()

                nursery.start_soon(outage_after_first_part)
                with pytest.raises(RemoteError) as error:
                    await rpc.call(
                        "s3.WriteFile", {"pathname": "big.bin", "source_path": str(source)}
                    )
                assert error.value.code == "S3_OPERATION_FAILED"
                assert open_uploads(seaweedfs, prefix) == [prefix + "big.bin"]
                assert app.janitor.pending_aborts == 1
                proxy.refuse = False  # the service is back
                with trio.fail_after(15):
                    while app.janitor.pending_aborts:
                        await trio.sleep(0.1)
                assert open_uploads(seaweedfs, prefix) == []
        nursery.cancel_scope.cancel()
