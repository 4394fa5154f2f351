"""Visibility modes end to end: ``acl`` on moto, ``none`` on SeaweedFS, ``auto`` on each.

The same scenario runs on every pairing. Where ACLs work (moto's
``acl-bucket``), per-object visibility is set with canned ACLs and read back
from the object ACL, through every write path; where they do not (SeaweedFS
accepts ACL headers and ignores them), asking for a visibility other than the
bucket's is a clear ``INVALID_VISIBILITY``, and a recording proxy between the
server and the service shows that no request carried anything ACL-related
(``auto`` sends exactly one probe, whose marker object is removed again).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.proxy import TCPProxy
from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import admin_client
from trio_s3rpc import cli
from trio_s3rpc.client import RemoteError, RPCClient, RPCPool

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB
PROBE_KEY = ".trio-s3rpc-acl-probe"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Case:
    service: str  # the session fixture: "moto", "rgw" or "seaweedfs"
    bucket: str
    mode: str  # as configured
    resolves_to: str

    def __str__(self) -> str:
        return f"{self.service}-{self.mode}"


CASES = [
    Case("moto", "acl-bucket", "acl", "acl"),
    Case("rgw", "acl-bucket", "acl", "acl"),
    Case("seaweedfs", "test-bucket", "none", "none"),
    Case("rgw", "acl-bucket", "none", "none"),
    Case("moto", "acl-bucket", "auto", "acl"),
    Case("rgw", "acl-bucket", "auto", "acl"),
    Case("seaweedfs", "test-bucket", "auto", "none"),
]


@dataclass(frozen=True)
class Head:
    """One request as the proxy saw it."""

    method: str
    target: str
    headers: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> Head:
        lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return cls(method, target, headers)

    @property
    def touches_acl(self) -> bool:
        query = self.target.partition("?")[2]
        return any(
            name == "x-amz-acl" or name.startswith("x-amz-grant-") for name in self.headers
        ) or "acl" in [part.partition("=")[0] for part in query.split("&")]


def heads(proxy: TCPProxy) -> list[Head]:
    return [Head.parse(raw) for raw in proxy.requests]


class Client(RPCClient):
    """An RPC client that remembers the server's address (for opening a pool beside it)."""

    address: str = ""


@asynccontextmanager
async def app_behind_proxy(
    endpoint: Any,
    buckets: dict[str, dict[str, Any]],
    root: Path,
    *,
    server: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Client, TCPProxy]]:
    """The server (``server`` adds to its server's settings) talking to ``endpoint``
    through a recording proxy; local files may be read and written under ``root``."""
    host, port = endpoint.endpoint.removeprefix("http://").rsplit(":", 1)
    proxy = TCPProxy(host, int(port))
    async with trio.open_nursery() as nursery:
        proxy_port = await proxy.start(nursery)
        settings = {
            **endpoint_server(endpoint),
            **(server or {}),
            "endpoint": f"http://127.0.0.1:{proxy_port}",
        }
        config = config_dict(settings, buckets, s3={"local_roots": [str(root)]})
        async with running_app(config) as (_, address), await Client.connect(address) as rpc:
            rpc.address = address
            yield rpc, proxy
        nursery.cancel_scope.cancel()


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def endpoint(case: Case, request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(case.service)


@pytest.fixture
def prefix() -> str:
    return f"vis-{secrets.token_hex(4)}/"


async def visibility_of(rpc: RPCClient, pathname: str) -> str:
    meta = await rpc.call("s3.GetMetadata", {"pathname": pathname})
    return str(meta["visibility"])


async def chunked_upload(rpc: RPCClient, pathname: str, data: bytes, visibility: str) -> Any:
    upload_id = (
        await rpc.call("s3.UploadStart", {"pathname": pathname, "visibility": visibility})
    )["upload_id"]
    await rpc.call("s3.UploadChunk", {"upload_id": upload_id, "content": b64(data)})
    return await rpc.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(data)})


async def test_visibility_scenario(
    case: Case, endpoint: Any, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_s3rpc.storage")
    big = tmp_path / "big.bin"
    big.write_bytes(secrets.token_bytes(PART + 1000))  # multipart, then the checksum's self-copy
    bucket = {"bucket": case.bucket, "prefix": prefix, "visibility_mode": case.mode}
    async with app_behind_proxy(endpoint, {"uploads": bucket}, tmp_path) as (rpc, proxy):
        # Writes at the bucket's own visibility (private) work in every mode.
        await rpc.call("s3.Write", {"pathname": "private.txt", "content": b64(b"p")})
        assert await visibility_of(rpc, "private.txt") == "private"

        if case.resolves_to == "acl":
            await acl_scenario(rpc, endpoint, case, prefix, big)
        else:
            await no_acl_scenario(rpc, big)

        probe_puts = [h for h in heads(proxy) if h.method == "PUT" and PROBE_KEY in h.target]
        if case.mode == "none":
            assert not [h for h in heads(proxy) if h.touches_acl]
            assert probe_puts == []
        if case.mode == "auto":
            # Decided once, by one probe, and logged.
            assert len(probe_puts) == 1
            assert probe_puts[0].headers["x-amz-acl"] == "public-read"
            decided = f"event=visibility_probe bucket=uploads mode={case.resolves_to}"
            assert decided in caplog.text
        if case.resolves_to == "none":
            # The only ACL-related requests are the probe's, on its marker.
            assert all(PROBE_KEY in h.target for h in heads(proxy) if h.touches_acl)
    # The probe's marker object is gone again.
    listed = admin_client(endpoint).list_objects_v2(Bucket=case.bucket, Prefix=prefix)
    assert PROBE_KEY not in [item["Key"].removeprefix(prefix) for item in listed["Contents"]]


async def acl_scenario(rpc: RPCClient, endpoint: Any, case: Case, prefix: str, big: Path) -> None:
    await rpc.call(
        "s3.Write", {"pathname": "public.txt", "content": b64(b"p"), "visibility": "public"}
    )
    assert await visibility_of(rpc, "public.txt") == "public"
    grants = admin_client(endpoint).get_object_acl(Bucket=case.bucket, Key=prefix + "public.txt")
    assert any(
        g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants["Grants"]
    )

    # SetVisibility round-trips.
    await rpc.call("s3.SetVisibility", {"pathname": "private.txt", "visibility": "public"})
    assert await visibility_of(rpc, "private.txt") == "public"
    await rpc.call("s3.SetVisibility", {"pathname": "private.txt", "visibility": "private"})
    assert await visibility_of(rpc, "private.txt") == "private"

    # Copy and Move set the destination's visibility.
    await rpc.call(
        "s3.Copy",
        {"source_pathname": "private.txt", "dest_pathname": "copy.txt", "visibility": "public"},
    )
    assert await visibility_of(rpc, "copy.txt") == "public"
    assert await visibility_of(rpc, "private.txt") == "private"

    # Streamed multipart writes get their checksum by a copy onto themselves:
    # the ACL they were created with must survive it.
    written = await rpc.call(
        "s3.WriteFile", {"pathname": "big.bin", "source_path": str(big), "visibility": "public"}
    )
    assert written["checksum"].startswith("crc32c:")
    assert await visibility_of(rpc, "big.bin") == "public"
    finished = await chunked_upload(rpc, "chunked.bin", b"c" * 100, "public")
    assert finished["checksum"].startswith("crc32c:")
    assert await visibility_of(rpc, "chunked.bin") == "public"
    await chunked_upload(rpc, "chunked-private.bin", b"c" * 100, "")
    assert await visibility_of(rpc, "chunked-private.bin") == "private"


async def no_acl_scenario(rpc: RPCClient, big: Path) -> None:
    async def refused(method: str, args: dict[str, Any]) -> None:
        with pytest.raises(RemoteError) as error:
            await rpc.call(method, args)
        assert error.value.code == "INVALID_VISIBILITY", method
        assert "cannot set per-object visibility" in error.value.text
        assert "visibility_mode: none" in error.value.text

    await refused("s3.Write", {"pathname": "p.txt", "content": "", "visibility": "public"})
    await refused("s3.SetVisibility", {"pathname": "private.txt", "visibility": "public"})
    await refused(
        "s3.Copy",
        {"source_pathname": "private.txt", "dest_pathname": "c.txt", "visibility": "public"},
    )
    await refused(
        "s3.WriteFile", {"pathname": "big.bin", "source_path": str(big), "visibility": "public"}
    )
    await refused("s3.UploadStart", {"pathname": "u.bin", "visibility": "public"})
    # The bucket's own visibility is accepted everywhere, and changes nothing.
    await rpc.call("s3.SetVisibility", {"pathname": "private.txt", "visibility": "private"})
    await rpc.call(
        "s3.Copy",
        {"source_pathname": "private.txt", "dest_pathname": "c.txt", "visibility": "private"},
    )
    await rpc.call("s3.Move", {"source_pathname": "c.txt", "dest_pathname": "m.txt"})
    await rpc.call("s3.WriteFile", {"pathname": "big.bin", "source_path": str(big)})
    await chunked_upload(rpc, "chunked.bin", b"c" * 100, "private")
    for pathname in ("private.txt", "m.txt", "big.bin", "chunked.bin"):
        assert await visibility_of(rpc, pathname) == "private"


async def test_none_mode_reports_the_buckets_configured_visibility(
    seaweedfs: Any, prefix: str, tmp_path: Path
) -> None:
    bucket = {
        "bucket": "test-bucket",
        "prefix": prefix,
        "visibility": "public",
        "visibility_mode": "none",
    }
    async with app_behind_proxy(seaweedfs, {"cdn": bucket}, tmp_path) as (rpc, proxy):
        await rpc.call("s3.Write", {"pathname": "a.css", "content": b64(b"a{}")})
        assert await visibility_of(rpc, "a.css") == "public"
        with pytest.raises(RemoteError) as error:
            await rpc.call("s3.SetVisibility", {"pathname": "a.css", "visibility": "private"})
        assert error.value.code == "INVALID_VISIBILITY"
        assert "'public'" in error.value.text  # says which visibility every object has
        assert not [h for h in heads(proxy) if h.touches_acl]


async def test_auto_probes_once_under_concurrent_first_calls(
    seaweedfs: Any, prefix: str, tmp_path: Path
) -> None:
    bucket = {"bucket": "test-bucket", "prefix": prefix, "visibility_mode": "auto"}
    async with app_behind_proxy(seaweedfs, {"uploads": bucket}, tmp_path) as (rpc, proxy):
        async with await RPCPool.connect(rpc.address, size=8) as pool:
            async with trio.open_nursery() as nursery:
                for index in range(8):
                    args = {"pathname": f"w{index}.txt", "content": b64(b"w")}
                    nursery.start_soon(pool.call, "s3.Write", args)
        probe_puts = [h for h in heads(proxy) if h.method == "PUT" and PROBE_KEY in h.target]
        assert len(probe_puts) == 1


async def test_register_bucket_takes_a_visibility_mode(
    moto: Any, prefix: str, tmp_path: Path
) -> None:
    bucket = {"bucket": "acl-bucket", "prefix": prefix, "visibility_mode": "acl"}
    async with app_behind_proxy(moto, {"uploads": bucket}, tmp_path) as (rpc, proxy):
        for name, mode in [("probed", "auto"), ("told-none", "none")]:
            answer = await rpc.call(
                "s3.RegisterBucket",
                {
                    "name": name,
                    "server": "main",
                    "bucket": "acl-bucket",
                    "prefix": f"{prefix}{name}/",
                    "visibility_mode": mode,
                },
            )
            assert answer["success"] is True
        written = {"pathname": "x.txt", "content": b64(b"x"), "visibility": "public"}
        await rpc.call("s3.Write", {"bucket": "probed", **written})
        meta = await rpc.call("s3.GetMetadata", {"bucket": "probed", "pathname": "x.txt"})
        assert meta["visibility"] == "public"
        # "none" is honoured even where the service keeps ACLs: nothing ACL-related is sent.
        sent_before = len(proxy.requests)
        with pytest.raises(RemoteError) as error:
            await rpc.call("s3.Write", {"bucket": "told-none", **written})
        assert error.value.code == "INVALID_VISIBILITY"
        await rpc.call("s3.Write", {"bucket": "told-none", "pathname": "x.txt", "content": ""})
        meta = await rpc.call("s3.GetMetadata", {"bucket": "told-none", "pathname": "x.txt"})
        assert meta["visibility"] == "private"
        assert not [h for h in heads(proxy)[sent_before:] if h.touches_acl]
        with pytest.raises(RemoteError) as error:
            await rpc.call(
                "s3.RegisterBucket",
                {"name": "bad", "server": "main", "bucket": "bkt", "visibility_mode": "acls"},
            )
        assert error.value.code == "INVALID_CONFIG"


@pytest.fixture
def probe_config(moto: Any, seaweedfs: Any, tmp_path: Path, prefix: str) -> Path:
    auto = {"prefix": prefix, "visibility_mode": "auto"}
    config = {
        "s3": {
            "default": "moto-acl",
            "servers": {
                "moto": endpoint_server(moto),
                "seaweed": endpoint_server(seaweedfs),
            },
            "buckets": {
                "moto-acl": {"server": "moto", "bucket": "acl-bucket", **auto},
                "seaweed": {"server": "seaweed", "bucket": "test-bucket", **auto},
            },
        }
    }
    path = tmp_path / "rr.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    path.chmod(0o600)
    return path


def test_check_config_probe_shows_each_buckets_decision(
    probe_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check-config", "--config", str(probe_config), "--probe"]) == 0
    output = capsys.readouterr().out
    assert "bucket moto-acl: visibility_mode resolves to acl" in output
    assert "bucket seaweed: visibility_mode resolves to none" in output


def test_check_config_probe_with_a_wrong_secret_decides_nothing(
    seaweedfs: Any, tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # SeaweedFS refuses the bad signature with a 403: that says nothing about ACLs.
    server = endpoint_server(seaweedfs)
    server["credentials"] = {**server["credentials"], "secret": "not-the-secret"}
    config = {
        "s3": {
            "servers": {"seaweed": server},
            "buckets": {
                "seaweed": {
                    "server": "seaweed",
                    "bucket": "test-bucket",
                    "prefix": prefix,
                    "visibility_mode": "auto",
                }
            },
        }
    }
    path = tmp_path / "rr.yaml"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    assert cli.main(["check-config", "--config", str(path), "--probe"]) == 1
    output = capsys.readouterr().out
    assert "resolves to" not in output
    assert (
        "bucket seaweed: probe failed: PERMISSION_DENIED: bucket 'seaweed': visibility_mode "
        "auto is not decided: the ACL probe failed: the storage service refused PutObject: "
        "SignatureDoesNotMatch" in output
    )
    assert "not-the-secret" not in output


async def test_an_undecided_auto_bucket_fails_the_calls_that_need_it_and_probes_again(
    seaweedfs: Any, prefix: str
) -> None:
    # A registered bucket with a wrong secret: every call that needs the
    # decision fails clearly, none is taken as "no ACLs".
    wrong = endpoint_server(seaweedfs)
    wrong["credentials"] = {**wrong["credentials"], "secret": "not-the-secret"}
    bucket = {"bucket": "test-bucket", "prefix": prefix, "visibility_mode": "auto"}
    async with running_app(config_dict(wrong, {"uploads": bucket})) as (app, address):
        async with await RPCClient.connect(address) as rpc:
            for _ in range(2):
                with pytest.raises(RemoteError) as failed:
                    await rpc.call(
                        "s3.SetVisibility", {"pathname": "x.txt", "visibility": "public"}
                    )
                assert failed.value.code == "PERMISSION_DENIED"
                assert "visibility_mode auto is not decided" in failed.value.text
            assert app.storage.bucket("uploads").visibility_mode == "auto"
            assert app.storage.bucket("uploads").probe_attempts == 2  # retried, not held
