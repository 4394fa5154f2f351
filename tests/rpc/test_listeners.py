"""Binding the listen address for workers: families the machine lacks are skipped,
as trio's open_tcp_listeners skips them, and the name is resolved off the loop."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from trio_s3rpc.config import ListenAddress, RPCSettings
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.rpc import listeners

SETTINGS = RPCSettings(listen=ListenAddress("tcp", host="localhost", port=0))


def resolving_to(*families: int) -> Any:
    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        entries = {
            socket.AF_INET6: (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            socket.AF_INET: (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        }
        return [entries[family] for family in families]

    return getaddrinfo


def without_ipv6(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.socket

    def make(family: int = -1, *args: Any, **kwargs: Any) -> socket.socket:
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return real(family, *args, **kwargs)

    monkeypatch.setattr(listeners.stdlib_socket, "socket", make)


async def test_a_family_this_machine_lacks_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        listeners.trio.socket, "getaddrinfo", resolving_to(socket.AF_INET6, socket.AF_INET)
    )
    without_ipv6(monkeypatch)
    per_copy, address = await listeners.bind_sockets(SETTINGS, copies=2)
    try:
        assert [[sock.family for sock in sockets] for sockets in per_copy] == [
            [socket.AF_INET],
            [socket.AF_INET],
        ]
        assert address.port == per_copy[0][0].getsockname()[1] > 0
    finally:
        for sockets in per_copy:
            for sock in sockets:
                sock.close()


async def test_no_family_left_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listeners.trio.socket, "getaddrinfo", resolving_to(socket.AF_INET6))
    without_ipv6(monkeypatch)
    with pytest.raises(RPCError) as refused:
        await listeners.bind_sockets(SETTINGS)
    assert refused.value.code is ErrorCode.INVALID_CONFIG
    assert "Address family not supported" in refused.value.message
