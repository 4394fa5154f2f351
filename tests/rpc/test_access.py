"""Who may connect: s3.allow_from at accept, the warning for a listen address
beyond loopback, and a unix socket's mode, owner and group."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
from pathlib import Path

import pytest

from tests.rpc.test_server import assert_closed
from tests.support.server import config_dict, running_app
from trio_s3rpc.client import RPCClient, open_stream
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
