"""Listening sockets: the listen address opened or bound (tcp, or a unix socket
that nobody can reach before it has its mode and owner), and who may connect
(``s3.allow_from``)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket as stdlib_socket
import stat
import tempfile
from collections.abc import Iterator

import trio

from trio_s3rpc.config import MAX_UNIX_PATH, ListenAddress, RPCSettings
from trio_s3rpc.errors import ErrorCode, RPCError

log = logging.getLogger("trio_s3rpc.rpc")


def peer_allowed(stream: trio.SocketStream, settings: RPCSettings) -> bool:
    """Whether a tcp peer is inside ``s3.allow_from``; a refusal is logged."""
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return False  # already gone
    if not isinstance(peer, tuple):
        return True  # unix socket: its file mode and owner decide
    try:
        address = ipaddress.ip_address(str(peer[0]).partition("%")[0])
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address is not None and any(address in network for network in settings.allow_from):
        return True
    log.warning(
        "event=connection_refused peer=%s reason=%r",
        peer_name(stream),
        "not in s3.allow_from",
    )
    return False


def peer_name(stream: trio.SocketStream) -> str:
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return "?"
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer) or "unix"


async def open_listeners(settings: RPCSettings) -> tuple[list[trio.SocketListener], ListenAddress]:
    """Open the listen address; for tcp port 0 the answer carries the bound port."""
    address = settings.listen
    if address.scheme == "unix":
        return [await _open_unix_listener(address.path, settings)], address
    host = address.host or None
    try:
        listeners = await trio.open_tcp_listeners(address.port, host=host)
    except OSError as exc:
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on {address}: {exc.strerror}"
        ) from None
    port = listeners[0].socket.getsockname()[1]
    return list(listeners), ListenAddress("tcp", host=address.host, port=port)


async def _open_unix_listener(path: str, settings: RPCSettings) -> trio.SocketListener:
    sock = trio.socket.from_stdlib_socket(_bind_unix(path, settings))
    try:
        sock.listen(stdlib_socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        remove_socket_file(path)
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: {exc.strerror}"
        ) from None
    return trio.SocketListener(sock)


def _bind_unix(path: str, settings: RPCSettings) -> stdlib_socket.socket:
    """A unix socket bound at ``path`` that nobody could reach before it had its mode.

    It is bound in a private (0700) directory beside ``path``, under a umask
    that gives it ``s3.socket_mode`` at once, given its owner and group there
    (through the directory's handle, never following a link), and only then
    renamed into place: nobody else can replace the file or reach the socket
    between bind and chmod, and a link planted at ``path`` is replaced, never
    followed. (On Linux, fchmod/fchown of the socket's own descriptor do not
    touch the file that connect() checks.)
    """
    _clear_stale_socket(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        private = tempfile.mkdtemp(prefix=".trio-s3rpc-", dir=parent)
    except OSError as exc:
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: {exc.strerror}"
        ) from None
    sock = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    directory = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # A path short enough for sun_path whatever the directory's length.
        bind_path = os.path.join(private, "s")
        if len(os.fsencode(bind_path)) > MAX_UNIX_PATH:
            bind_path = f"/proc/self/fd/{directory}/s"
        with _umask(0o777 & ~settings.socket_mode):
            sock.bind(bind_path)
        # The directory is ours alone, so nothing there can be a planted link.
        os.chmod("s", settings.socket_mode, dir_fd=directory)
        _chown_socket(path, settings, directory)
        os.rename("s", path, src_dir_fd=directory)
    except (OSError, RPCError) as exc:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink("s", dir_fd=directory)
        if isinstance(exc, RPCError):
            raise
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: {exc.strerror}"
        ) from None
    finally:
        os.close(directory)
        with contextlib.suppress(OSError):
            os.rmdir(private)
    return sock


async def bind_sockets(
    settings: RPCSettings, copies: int = 1
) -> tuple[list[list[stdlib_socket.socket]], ListenAddress]:
    """Bind the listen address without listening yet (for a supervisor of workers).

    Connections are refused until a worker calls ``listen()`` on its inherited
    copy, which it does once it can serve: nobody waits in a backlog that no
    process accepts from. For tcp port 0 the answer carries the bound port.

    The answer holds ``copies`` lists of sockets, one per worker. For tcp with
    more than one copy, each is its own socket bound with ``SO_REUSEPORT``, so
    the kernel spreads new connections evenly over the workers' sockets; one
    socket shared by every worker lets whichever wakes first take them all
    (measured: 2 workers, 16 connections, one worker got nearly all of them).
    A unix socket, where ``SO_REUSEPORT`` does not spread connections, is one
    socket shared by every copy.

    As trio's ``open_tcp_listeners``: the host is resolved without blocking
    the event loop, and an address family this machine lacks
    (``EAFNOSUPPORT``, IPv6 in a container without it) is skipped as long as
    another family binds.
    """
    address = settings.listen
    if address.scheme == "unix":
        shared = [_bind_unix(address.path, settings)]
        return [shared] * copies, address
    host = address.host or None
    reuse_port = copies > 1 and hasattr(stdlib_socket, "SO_REUSEPORT")
    per_copy: list[list[stdlib_socket.socket]] = [[] for _ in range(copies if reuse_port else 1)]
    port = address.port
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=stdlib_socket.SOCK_STREAM, flags=stdlib_socket.AI_PASSIVE
        )
        seen: set[int] = set()
        unsupported: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            if family in seen:
                continue
            seen.add(family)
            try:
                probe = stdlib_socket.socket(family, kind, proto)
            except OSError as exc:
                if exc.errno != errno.EAFNOSUPPORT:
                    raise
                unsupported = exc
                continue
            probe.close()
            for sockets in per_copy:
                sock = stdlib_socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
                if family == stdlib_socket.AF_INET6:
                    sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
                # With port 0 every family and copy takes the port the first one got.
                sock.bind((sockaddr[0], port, *sockaddr[2:]))
                port = sock.getsockname()[1]
    except OSError as exc:
        for sockets in per_copy:
            for sock in sockets:
                sock.close()
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on {address}: {exc.strerror}"
        ) from None
    if not per_copy[0]:
        reason = unsupported.strerror if unsupported is not None else "no address to bind"
        raise RPCError(ErrorCode.INVALID_CONFIG, f"cannot listen on {address}: {reason}")
    if not reuse_port:
        per_copy = per_copy * copies
    return per_copy, ListenAddress("tcp", host=address.host, port=port)


def _chown_socket(path: str, settings: RPCSettings, directory: int) -> None:
    """Give the socket file ``s`` in ``directory`` (a handle) ``s3.socket_owner`` and
    ``s3.socket_group``, when set; ``path`` is where it will be, for the message."""
    if settings.socket_owner < 0 and settings.socket_group < 0:
        return
    try:
        os.chown(
            "s",
            settings.socket_owner,
            settings.socket_group,
            dir_fd=directory,
            follow_symlinks=False,
        )
    except OSError as exc:
        raise RPCError(
            ErrorCode.INVALID_CONFIG,
            f"cannot give unix://{path} owner {settings.socket_owner} and group "
            f"{settings.socket_group} (s3.socket_owner, s3.socket_group): {exc.strerror}",
            "a different owner needs root; the group must be one of the server user's groups",
        ) from None


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse to steal a live one."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise RPCError(
            ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: a non-socket file is there"
        )
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: stale
        log.info("event=stale_socket_removed path=%s", path)
        return
    finally:
        probe.close()
    raise RPCError(
        ErrorCode.INVALID_CONFIG, f"cannot listen on unix://{path}: another server is listening"
    )


def remove_socket_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)
