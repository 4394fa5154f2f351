"""Who may connect: s3.allow_from at accept, the warning for a listen address
beyond loopback, and a unix socket's mode, owner and group."""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.rpc.test_server import assert_closed
from tests.support.server import config_dict, running_app
from trio_s3rpc.client import RemoteError, RPCClient, open_stream
from trio_s3rpc.config import ConfigError
from trio_s3rpc.errors import RPCError
from trio_s3rpc.goridge.frame import CODEC_JSON, encode_rpc_request

LISTED = {"buckets": ["uploads"], "default": "uploads"}


async def test_a_peer_outside_allow_from_is_refused_at_accept_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_s3rpc.rpc")
    config = config_dict(s3={"allow_from": ["10.0.0.0/8", "fd00::/8"]})
    async with running_app(config) as (app, address):
        stream = await open_stream(address)
        await stream.send_all(encode_rpc_request(1, "s3.ListBuckets", CODEC_JSON, b"[]"))
        # Closed without an answer, and never served as a connection.
        await assert_closed(stream)
        await stream.aclose()
        assert app.server.connection_count == 0
    refused = [
        r.getMessage() for r in caplog.records if "event=connection_refused" in r.getMessage()
    ]
    assert len(refused) == 1
    assert "peer=127.0.0.1:" in refused[0] and "not in s3.allow_from" in refused[0]


async def test_a_peer_inside_allow_from_is_served() -> None:
    config = config_dict(s3={"allow_from": ["10.0.0.0/8", "127.0.0.1/32"]})
    async with running_app(config) as (_, address):
        async with await RPCClient.connect(address) as rpc:
            assert await rpc.call("s3.ListBuckets") == LISTED


async def test_listening_beyond_loopback_warns_naming_the_risk(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_s3rpc.rpc")
    # All interfaces, but only this machine may connect: the warning still names the risk.
    config = config_dict(listen="tcp://0.0.0.0:0", s3={"allow_from": ["127.0.0.1/32"]})
    async with running_app(config) as (_, address):
        async with await RPCClient.connect(address.replace("0.0.0.0", "127.0.0.1")) as rpc:
            assert await rpc.call("s3.ListBuckets") == LISTED
    (warning,) = [r for r in caplog.records if "event=listen_exposed" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    text = warning.getMessage()
    assert "tcp://0.0.0.0:" in text and "no authentication" in text
    assert "storage credentials" in text and "127.0.0.1/32" in text


async def test_loopback_listen_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trio_s3rpc.rpc")
    async with running_app(config_dict()) as (_, address):
        async with await RPCClient.connect(address) as rpc:
            await rpc.call("s3.ListBuckets")
    assert "event=listening" in caplog.text
    assert "event=listen_exposed" not in caplog.text


def other_owner() -> tuple[int, int]:
    """A user and group the socket can be given: someone else as root, else our own."""
    if os.getuid() == 0:
        try:
            return pwd.getpwnam("nobody").pw_uid, grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_gid
        except KeyError:
            return 65534, 65534
    return os.getuid(), os.getgroups()[-1] if os.getgroups() else os.getgid()


async def test_unix_socket_mode_owner_and_group_are_applied(tmp_path: Path) -> None:
    uid, gid = other_owner()
    path = tmp_path / "rpc.sock"
    config = config_dict(
        listen=f"unix://{path}",
        s3={"socket_mode": "0660", "socket_owner": uid, "socket_group": str(gid)},
    )
    async with running_app(config) as (_, address):
        info = os.stat(path)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert (info.st_uid, info.st_gid) == (uid, gid)
        async with await RPCClient.connect(address) as rpc:
            assert await rpc.call("s3.ListBuckets") == LISTED
    assert not path.exists()


def test_unknown_socket_owner_or_group_is_a_config_error() -> None:
    from trio_s3rpc.config import parse_config

    with pytest.raises(ConfigError) as owner:
        parse_config(config_dict(s3={"socket_owner": "no-such-user-here"}), {})
    assert owner.value.message == "s3.socket_owner: no user named 'no-such-user-here'"
    with pytest.raises(ConfigError) as group:
        parse_config(config_dict(s3={"socket_group": "no-such-group-here"}), {})
    assert group.value.message == "s3.socket_group: no group named 'no-such-group-here'"


@pytest.mark.skipif(os.getuid() == 0, reason="root may give a socket to anyone")
async def test_a_socket_owner_that_cannot_be_set_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "rpc.sock"
    config = config_dict(listen=f"unix://{path}", s3={"socket_owner": 0})
    with pytest.raises(RPCError) as refused:
        async with running_app(config):
            pytest.fail("the server started")
    assert refused.value.code == "INVALID_CONFIG"
    assert "s3.socket_owner" in refused.value.message
    assert not path.exists()


async def test_the_unix_socket_is_never_reachable_before_it_has_its_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone who may write the socket's directory swaps the path for a link to
    # a file of the server's user the moment the socket is bound: the mode
    # meant for the socket must never land on that file.
    victim = tmp_path / "victim"
    victim.write_text("the server user's own file")
    victim.chmod(0o600)
    path = tmp_path / "rpc.sock"
    at_bind: list[bool] = []
    real_bind = socket.socket.bind

    def bind_then_attack(self: socket.socket, address: Any) -> None:
        real_bind(self, address)
        if self.family == socket.AF_UNIX:
            at_bind.append(os.path.lexists(path))  # reachable at its path already?
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.symlink(victim, path)

    monkeypatch.setattr(socket.socket, "bind", bind_then_attack)
    config = config_dict(listen=f"unix://{path}", s3={"socket_mode": "0666"})
    async with running_app(config) as (_, address):
        monkeypatch.undo()
        async with await RPCClient.connect(address) as rpc:
            assert await rpc.call("s3.ListBuckets") == LISTED
        info = os.lstat(path)
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o666
    assert at_bind == [False]
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert victim.read_text() == "the server user's own file"
    # Nothing is left beside it: the private directory it was bound in is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]


async def test_an_ipv4_mapped_allow_from_entry_admits_its_ipv4_peer() -> None:
    config = config_dict(s3={"allow_from": ["::ffff:127.0.0.1/128"]})
    async with running_app(config) as (_, address):
        async with await RPCClient.connect(address) as rpc:
            assert await rpc.call("s3.ListBuckets") == LISTED


async def test_register_bucket_refuses_names_that_would_forge_logs_or_labels() -> None:
    async with running_app(config_dict()) as (app, address):
        async with await RPCClient.connect(address) as rpc:
            for name in ("x\nlevel=ERROR forged", "\x1b[2Jclear", "n" * 10_000):
                with pytest.raises(RemoteError) as refused:
                    await rpc.call(
                        "s3.RegisterBucket", {"name": name, "server": "main", "bucket": "abc"}
                    )
                assert refused.value.code == "INVALID_CONFIG"
                assert "is not a bucket name" in refused.value.text
                assert "\n" not in refused.value.text and "\x1b" not in refused.value.text
            with pytest.raises(RemoteError) as refused:
                await rpc.call(
                    "s3.RegisterBucket",
                    {"name": "docs", "server": "main", "bucket": "x" * 10_000},
                )
            assert refused.value.code == "INVALID_CONFIG"
            assert "is not an S3 bucket name: it must be 3 to 63 characters" in refused.value.text
            assert await rpc.call("s3.ListBuckets") == LISTED
        assert sorted(app.storage.buckets) == ["uploads"]


async def test_register_buckets_off_refuses_every_registration() -> None:
    async with running_app(config_dict(s3={"register_buckets": "off"})) as (_, address):
        async with await RPCClient.connect(address) as rpc:
            with pytest.raises(RemoteError) as refused:
                await rpc.call(
                    "s3.RegisterBucket", {"name": "docs", "server": "main", "bucket": "test-bucket"}
                )
            assert refused.value.code == "PERMISSION_DENIED"
            assert "s3.register_buckets: off" in refused.value.text
            assert await rpc.call("s3.ListBuckets") == LISTED


async def test_register_buckets_scopes_admit_only_their_prefixes() -> None:
    scope = {"server": "main", "bucket": "tenant-bucket", "prefix": "tenants/"}
    async with running_app(config_dict(s3={"register_buckets": [scope]})) as (_, address):
        async with await RPCClient.connect(address) as rpc:
            inside = {"server": "main", "bucket": "tenant-bucket", "prefix": "tenants/42/"}
            assert (await rpc.call("s3.RegisterBucket", {"name": "t42", **inside}))["success"]
            for outside in (
                {"server": "main", "bucket": "tenant-bucket", "prefix": "other/"},
                {"server": "main", "bucket": "tenant-bucket"},
                {"server": "main", "bucket": "test-bucket", "prefix": "tenants/"},
            ):
                with pytest.raises(RemoteError) as refused:
                    await rpc.call("s3.RegisterBucket", {"name": "sneaky", **outside})
                assert refused.value.code == "PERMISSION_DENIED"
                assert (
                    "outside what s3.register_buckets allows (main:tenant-bucket/tenants/)"
                    in refused.value.text
                )
            listed = await rpc.call("s3.ListBuckets")
            assert listed["buckets"] == ["t42", "uploads"]
