"""Our HTTP/1.1 connection does what httpcore's does, on the same requests to the same servers.

Each case sends one request through ``httpcore.AsyncHTTPConnection`` and through
:class:`~trio_s3rpc.s3.http11.HTTP11Connection` to a scripted loopback server
and compares what a caller sees: status, headers, body and the bytes the server
received, or the type of the error raised.
"""

from __future__ import annotations

import datetime
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpcore
import pytest
import trio

from tests.support.http import content_length, read_body, read_head
from trio_s3rpc.s3.http11 import MAX_READ_SIZE, HTTP11Connection
from trio_s3rpc.s3.pool import ConnectionPool

Script = Callable[[trio.abc.Stream, bytes, bytes], Awaitable[bool]]
"""Answers one request (its head and body) on the stream; False ends the connection."""


@dataclass(slots=True)
class ScriptedServer:
    script: Script
    port: int = 0
    accepted: int = 0
    received: list[bytes] = field(default_factory=list)

    async def handle(self, stream: trio.abc.Stream) -> None:
        self.accepted += 1
        buffer = b""
        try:
            async with stream:
                while True:
                    got = await read_head(stream, buffer)
                    if got is None:
                        return
                    head, buffer = got
                    body = b""
                    if not head.startswith(b"PUT /early"):
                        read = await read_body(stream, buffer, content_length(head))
                        if read is None:
                            return
                        body, buffer = read
                    self.received.append(head + b"\r\n\r\n" + body)
                    if not await self.script(stream, head, body):
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def start(nursery: trio.Nursery, script: Script) -> ScriptedServer:
    server = ScriptedServer(script)
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, host="127.0.0.1"), server.handle, 0
    )
    server.port = listeners[0].socket.getsockname()[1]
    return server


def request(
    port: int,
    method: bytes = b"GET",
    target: bytes = b"/k",
    body: bytes = b"",
    *,
    scheme: bytes = b"http",
    host: bytes = b"127.0.0.1",
    **timeouts: float,
) -> httpcore.Request:
    # One Host for every server, so two servers (ports) receive the same bytes.
    headers = [(b"Host", b"s3.test"), (b"User-Agent", b"test")]
    if body or method == b"PUT":
        headers.append((b"Content-Length", str(len(body)).encode()))
    return httpcore.Request(
        method,
        httpcore.URL(scheme=scheme, host=host, port=port, target=target),
        headers=headers,
        content=body,
        extensions={"timeout": timeouts} if timeouts else {},
    )


Outcome = tuple[object, ...]


async def outcome(connection: object, req: httpcore.Request) -> Outcome:
    """What a caller sees: ("ok", status, headers, body) or ("error", exception type)."""
    try:
        response = await connection.handle_async_request(req)  # type: ignore[attr-defined]
        try:
            body = b"".join([chunk async for chunk in response.stream])
        finally:
            await response.aclose()
    except Exception as exc:
        return ("error", type(exc).__name__)
    return ("ok", response.status, list(response.headers), body)


def library(port: int, **options: object) -> httpcore.AsyncHTTPConnection:
    return httpcore.AsyncHTTPConnection(
        origin=httpcore.Origin(b"http", b"127.0.0.1", port),
        keepalive_expiry=5.0,
        **options,  # type: ignore[arg-type]
    )


def ours(port: int, **options: object) -> HTTP11Connection:
    return HTTP11Connection((b"http", b"127.0.0.1", port), keepalive_expiry=5.0, **options)  # type: ignore[arg-type]


async def both(
    nursery: trio.Nursery, script: Script, make: Callable[[int], httpcore.Request], times: int = 1
) -> tuple[list[Outcome], list[Outcome], ScriptedServer, ScriptedServer]:
    """The requests through httpcore's connection and through ours, a server each."""
    results = []
    servers = []
    for factory in (library, ours):
        server = await start(nursery, script)
        connection = factory(server.port)
        seen = [await outcome(connection, make(server.port)) for _ in range(times)]
        await connection.aclose()
        results.append(seen)
        servers.append(server)
    return results[0], results[1], servers[0], servers[1]


def answer(raw: bytes, *, keep: bool = True) -> Script:
    async def script(stream: trio.abc.Stream, head: bytes, body: bytes) -> bool:
        await stream.send_all(raw)
        return keep

    return script


def pieces(*parts: bytes, keep: bool = True) -> Script:
    """An answer sent in parts, each a write of its own after the one before arrived."""

    async def script(stream: trio.abc.Stream, head: bytes, body: bytes) -> bool:
        for part in parts:
            await stream.send_all(part)
            await trio.sleep(0.005)
        return keep

    return script


CASES = {
    "content-length": answer(b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e"\r\n\r\nhello'),
    "chunked": answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    ),
    "read to the close": answer(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", keep=False
    ),
    "no content": answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
    "continue first": answer(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    ),
    "error answer": answer(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: 19\r\n\r\n"
        b"<Error>none</Error>"
    ),
    "hang up without answer": answer(b"", keep=False),
    "truncated body": answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", keep=False),
    "not http": answer(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep=False),
    # Forms the plain reader leaves to h11 (trio_s3rpc.s3.plain), and what it reads itself.
    "bare LF line ends": answer(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    "folded header": answer(b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"),
    "repeated content-length": answer(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
    ),
    "conflicting content-length": answer(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", keep=False
    ),
    "http/1.0": answer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "bytes beyond the body": answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"),
    "answer in pieces": pieces(
        b"HTTP/1.", b"1 200 OK\r\nContent-Le", b"ngth: 5\r\n\r", b"\nhe", b"llo"
    ),
    "closed mid-head": pieces(b"HTTP/1.1 200 OK\r\nContent-", keep=False),
    "header too large": answer(
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_answers_and_errors_are_httpcores(nursery: trio.Nursery, case: str) -> None:
    theirs, mine, library_server, our_server = await both(
        nursery, CASES[case], lambda port: request(port, target=b"/a/b%20c?x=1"), times=2
    )
    assert mine == theirs
    # The same requests reached the server, on as many connections.
    assert our_server.received == library_server.received
    assert our_server.accepted == library_server.accepted


@pytest.mark.parametrize(
    ("method", "body"),
    [
        (b"PUT", b"x" * 10),
        (b"PUT", b""),
        (b"HEAD", b""),
        (b"DELETE", b""),
        (b"PUT", b"y" * 300_000),
    ],
)
async def test_the_bytes_on_the_wire_are_httpcores(
    nursery: trio.Nursery, method: bytes, body: bytes
) -> None:
    script = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    theirs, mine, library_server, our_server = await both(
        nursery, script, lambda port: request(port, method, b"/k?uploads", body), times=2
    )
    assert mine == theirs
    assert theirs[0][0] == "ok"
    assert our_server.received == library_server.received
    assert our_server.accepted == library_server.accepted == 1  # kept alive


async def test_a_streamed_body_goes_out_as_httpcore_sends_it(nursery: trio.Nursery) -> None:
    async def chunks() -> object:
        for piece in (b"one ", b"two ", b"three"):
            yield piece

    def make(port: int) -> httpcore.Request:
        req = request(port, b"PUT", b"/k")
        return httpcore.Request(
            b"PUT",
            req.url,
            headers=[*req.headers[:2], (b"Content-Length", b"13")],
            content=chunks(),  # type: ignore[arg-type]
        )

    script = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    theirs, mine, library_server, our_server = await both(nursery, script, make)
    assert mine == theirs == [("ok", 200, [(b"Content-Length", b"0")], b"")]
    assert our_server.received == library_server.received


async def test_a_body_that_fails_as_it_is_read_raises_its_own_error_as_httpcore(
    nursery: trio.Nursery,
) -> None:
    """The caller's chunks are not the connection's I/O: their failure is not a WriteError
    (which would be taken for a server that hung up, and the answer read instead)."""

    async def failing() -> object:
        yield b"one "
        raise OSError("the local file went away")

    def make(port: int) -> httpcore.Request:
        req = request(port, b"PUT", b"/k")
        return httpcore.Request(
            b"PUT",
            req.url,
            headers=[*req.headers[:2], (b"Content-Length", b"13")],
            content=failing(),  # type: ignore[arg-type]
            # Were the failure taken for the server's, the answer would be waited for.
            extensions={"timeout": {"read": 5.0}},
        )

    script = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    theirs, mine, _, _ = await both(nursery, script, make)
    assert mine == theirs == [("error", "OSError")]


async def test_an_answer_sent_before_the_body_is_taken_is_still_read(nursery: trio.Nursery) -> None:
    """A server that refuses at the head and hangs up: both report its answer or both fail."""

    async def refuse(stream: trio.abc.Stream, head: bytes, body: bytes) -> bool:
        await stream.send_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied")
        return False

    theirs, mine, _, _ = await both(
        nursery, refuse, lambda port: request(port, b"PUT", b"/early", b"z" * 8_000_000)
    )
    assert mine == theirs


async def test_a_server_that_never_answers_times_out_the_read(nursery: trio.Nursery) -> None:
    async def silent(stream: trio.abc.Stream, head: bytes, body: bytes) -> bool:
        await trio.sleep_forever()
        return False

    theirs, mine, _, _ = await both(nursery, silent, lambda port: request(port, read=0.2))
    assert mine == theirs == [("error", "ReadTimeout")]


async def test_a_refused_connection_is_a_connect_error() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    theirs = await outcome(library(port), request(port))
    mine = await outcome(ours(port), request(port))
    assert mine == theirs == ("error", "ConnectError")


async def test_keep_alive_reuse_and_a_server_closed_connection(nursery: trio.Nursery) -> None:
    script = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    server = await start(nursery, script)
    connection = ours(server.port)
    assert (connection.is_available(), connection.has_expired()) == (True, False)
    for _ in range(3):
        assert (await outcome(connection, request(server.port)))[0] == "ok"
        assert connection.is_idle() and not connection.has_expired()
    assert server.accepted == 1
    # A connection busy with a request takes no other.
    response = await connection.handle_async_request(request(server.port))
    assert not connection.is_available()
    with pytest.raises(httpcore.ConnectionNotAvailable):
        await connection.handle_async_request(request(server.port))
    await response.aread()
    assert connection.is_idle()

    closing = await start(
        nursery, answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", keep=False)
    )
    connection = ours(closing.port)
    assert (await outcome(connection, request(closing.port)))[0] == "ok"
    await trio.sleep(0.05)  # the server's FIN arrives
    assert connection.has_expired()  # readable while idle: the server left


async def test_a_connection_expires_after_its_keepalive(nursery: trio.Nursery) -> None:
    server = await start(nursery, answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    connection = HTTP11Connection((b"http", b"127.0.0.1", server.port), keepalive_expiry=0.1)
    assert (await outcome(connection, request(server.port)))[0] == "ok"
    assert not connection.has_expired()
    await trio.sleep(0.2)
    assert connection.has_expired()
    await connection.aclose()


async def test_a_body_not_read_to_its_end_closes_the_connection(nursery: trio.Nursery) -> None:
    big = b"b" * 1_000_000
    server = await start(
        nursery, answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))
    )
    connection = ours(server.port)
    response = await connection.handle_async_request(request(server.port))
    async for _ in response.stream:
        break
    await response.aclose()
    assert connection.is_closed()


async def test_large_bodies_arrive_whole_in_growing_reads(nursery: trio.Nursery) -> None:
    big = bytes(range(256)) * 40_000  # 10 MB
    server = await start(
        nursery, answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))
    )
    connection = ours(server.port)
    response = await connection.handle_async_request(request(server.port))
    sizes = [len(chunk) async for chunk in response.stream]
    await response.aclose()
    assert sum(sizes) == len(big)
    assert max(sizes) > 64 * 1024  # reads grew past httpcore's 64 KiB
    assert max(sizes) <= MAX_READ_SIZE
    assert connection.is_idle()


async def test_cancellation_closes_the_connection(nursery: trio.Nursery) -> None:
    async def slow(stream: trio.abc.Stream, head: bytes, body: bytes) -> bool:
        await trio.sleep(5)
        return False

    server = await start(nursery, slow)
    connection = ours(server.port)
    with trio.move_on_after(0.1):
        await connection.handle_async_request(request(server.port))
    assert connection.is_closed()


# --- TLS ---------------------------------------------------------------------


def _certificate(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context and a client's trusting it."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    client_context = ssl.create_default_context(cafile=str(cert_path))
    return server_context, client_context


async def test_tls_answers_and_a_certificate_not_trusted_are_httpcores(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server_context, client_context = _certificate(tmp_path)
    server = ScriptedServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"))

    async def handle(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError:
            return
        await server.handle(tls)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, host="127.0.0.1"), handle, 0)
    port = listeners[0].socket.getsockname()[1]
    origin = (b"https", b"127.0.0.1", port)

    def make() -> httpcore.Request:
        return request(port, scheme=b"https", read=5.0, connect=5.0)

    # Trusted: two requests on one connection each. Not trusted: a refused handshake.
    for context, times, expected in (
        (client_context, 2, "ok"),
        (ssl.create_default_context(), 1, "error"),
    ):
        theirs_connection = httpcore.AsyncHTTPConnection(
            origin=httpcore.Origin(*origin), ssl_context=context
        )
        mine_connection = HTTP11Connection(origin, ssl_context=context)
        theirs = [await outcome(theirs_connection, make()) for _ in range(times)]
        mine = [await outcome(mine_connection, make()) for _ in range(times)]
        await theirs_connection.aclose()
        await mine_connection.aclose()
        assert mine == theirs
        assert mine[0][0] == expected
        assert mine_connection.is_closed()

    # Through the pool, an idle TLS connection is kept and used again.
    pool = ConnectionPool(max_connections=1, ssl_context=client_context)
    accepted = server.accepted
    try:
        for _ in range(3):
            response = await pool.request(make())
            assert await response.aread() == b"secret"
    finally:
        await pool.aclose()
    assert server.accepted - accepted == 1


async def test_a_tls_server_that_closes_without_close_notify_ends_the_body_as_httpcore(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Many HTTPS servers drop the TCP connection after a body read to the close,
    # without TLS's close_notify; httpcore (https_compatible) takes that as the end.
    server_context, client_context = _certificate(tmp_path)

    async def handle(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        try:
            await tls.do_handshake()
            got = await read_head(tls, b"")
            assert got is not None
            await tls.send_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        except trio.BrokenResourceError:
            return
        await trio.aclose_forcefully(stream)  # the TCP connection only: no close_notify

    listeners = await nursery.start(functools.partial(trio.serve_tcp, host="127.0.0.1"), handle, 0)
    port = listeners[0].socket.getsockname()[1]
    origin = (b"https", b"127.0.0.1", port)
    theirs_connection = httpcore.AsyncHTTPConnection(
        origin=httpcore.Origin(*origin), ssl_context=client_context
    )
    mine_connection = HTTP11Connection(origin, ssl_context=client_context)
    make = functools.partial(request, port, scheme=b"https", read=5.0, connect=5.0)
    theirs = await outcome(theirs_connection, make())
    mine = await outcome(mine_connection, make())
    await theirs_connection.aclose()
    await mine_connection.aclose()
    assert theirs[0] == "ok" and theirs[-1] == b"all of it"
    assert mine == theirs
