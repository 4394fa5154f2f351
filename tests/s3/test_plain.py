"""The plain form of HTTP/1.1 is read and written exactly as h11 reads and writes it.

:func:`~trio_s3rpc.s3.plain.parse_head` may decline an answer (NOT_PLAIN: h11
reads it then), but what it accepts must be what h11 makes of the same bytes:
status, headers in order and case, the body's length, whether the connection
may be reused; and while it waits for more bytes, h11 waits too. What
:func:`~trio_s3rpc.s3.plain.request_head` writes is byte for byte what h11
writes for the same request, and it declines whatever h11 would refuse.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_s3rpc.s3.plain import NOT_PLAIN, Head, parse_head, request_head

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
NAMES = [
    b"Content-Length",
    b"content-length",
    b"CONTENT-LENGTH",
    b"Transfer-Encoding",
    b"Connection",
    b"ETag",
    b"x-amz-request-id",
    b"Content-Type",
    b"Date",
    b"Last-Modified",
]

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12).map(str.encode)
names = st.one_of(st.sampled_from(NAMES), tokens)
# Mostly valid values; sometimes what h11 refuses or reads differently (controls, CR, LF, NUL).
value_chars = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from(["\t", " ", "\x80", "\xff", "\x00", "\x01", "\x7f", "\r", "\n", "\x0b"]),
)
values = st.one_of(
    st.text(value_chars, max_size=20).map(lambda text: text.encode("latin-1")),
    st.sampled_from(
        [b"0", b"5", b"007", b"5, 5", b"5,6", b"-1", b"close", b"keep-alive, Close", b"chunked"]
    ),
    st.integers(0, 10**21).map(lambda number: str(number).encode()),
)
status_lines = st.one_of(
    st.builds(
        lambda code, reason: b"HTTP/1.1 %d%s" % (code, reason),
        st.sampled_from([100, 101, 200, 204, 206, 304, 400, 404, 500, 503, 999]),
        st.sampled_from([b" OK", b"", b" ", b" Not Found", b"  two", b" \x80\xff", b" a\x00b"]),
    ),
    st.sampled_from([b"HTTP/1.0 200 OK", b"HTTP/2 200", b"HTTP/1.1 20 OK", b"SSH-2.0", b""]),
)
line_ends = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\r\n"])
separators = st.sampled_from([b": ", b":", b":\t", b" : ", b": \t "])
trailers = st.sampled_from([b"", b" ", b"\t", b"  "])


@st.composite
def answers(draw: Any) -> bytes:
    """An answer's bytes: mostly the plain form, with a few odd parts drawn in (a status
    line, separators, values, line ends, folded lines, framing headers)."""

    def odd(usual: st.SearchStrategy[bytes], unusual: st.SearchStrategy[bytes]) -> bytes:
        return draw(unusual) if draw(st.integers(0, 9)) == 0 else draw(usual)

    good_status = st.builds(
        lambda code: b"HTTP/1.1 %d OK" % code, st.sampled_from([200, 204, 206, 304, 404])
    )
    crlf = st.just(b"\r\n")
    lines = [odd(good_status, status_lines)]
    body = draw(st.binary(max_size=40))
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 30)) == 0:
            lines.append(b" folded")
            continue
        name = odd(tokens, names)
        value = odd(st.text(TOKEN_CHARS + " ", max_size=10).map(str.encode), values)
        lines.append(name + odd(st.just(b": "), separators) + value + odd(st.just(b""), trailers))
    if draw(st.integers(0, 4)):
        length = odd(st.just(b"%d" % len(body)), values)
        lines.insert(draw(st.integers(1, len(lines))), b"Content-Length: " + length)
    head = b"".join(line + odd(crlf, line_ends) for line in lines) + odd(crlf, line_ends)
    return head + body


@st.composite
def plain_answers(draw: Any) -> bytes:
    """Answers in the plain form: what S3 services send."""
    code = draw(st.sampled_from([200, 204, 206, 304, 403, 404, 500]))
    lines = [b"HTTP/1.1 %d %s" % (code, draw(st.sampled_from([b"OK", b"Not Found", b"x y"])))]
    body = draw(st.binary(max_size=30))
    headers = draw(
        st.lists(
            st.tuples(tokens, st.text(TOKEN_CHARS + " ", max_size=10).map(str.encode)),
            max_size=5,
        )
    )
    for name, value in headers:
        if name.lower() not in (b"content-length", b"transfer-encoding", b"connection"):
            lines.append(name + b": " + value.strip())
    lines.insert(draw(st.integers(1, len(lines))), b"Content-Length: %d" % len(body))
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


def h11_reads(data: bytes, method: bytes) -> tuple[str, Any]:
    """What h11 makes of an answer's bytes to a request of ``method``."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"s3.test")]))
    connection.send(h11.EndOfMessage())
    if data:  # b"" would tell h11 the connection ended
        connection.receive_data(data)
    events: list[Any] = []
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            events.append(event)
            if isinstance(event, h11.EndOfMessage):
                break
    except h11.RemoteProtocolError:
        return "error", None
    if not events:
        return "waiting", None
    response = events[0]
    if not isinstance(response, h11.Response):
        return "informational", None
    body = b"".join(bytes(event.data) for event in events if isinstance(event, h11.Data))
    ended = isinstance(events[-1], h11.EndOfMessage)
    return "response", (
        response.status_code,
        response.headers.raw_items(),
        body,
        ended,
        ended and connection.their_state is h11.DONE,
    )


def ours(data: bytes, head: Head) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool, bool]:
    body = data[head.size : head.size + head.length]
    ended = len(data) - head.size >= head.length
    return head.status, head.headers, body, ended, ended and head.keep_alive


@settings(max_examples=1500)
@given(answers(), st.sampled_from([b"GET", b"HEAD", b"PUT"]))
def test_an_answer_read_without_h11_is_what_h11_reads(data: bytes, method: bytes) -> None:
    parsed = parse_head(data, method)
    kind, reading = h11_reads(data, method)
    if isinstance(parsed, Head):
        assert kind == "response"
        assert ours(data, parsed) == reading
    elif parsed is None:
        assert kind == "waiting"


@settings(max_examples=500)
@given(plain_answers(), st.sampled_from([b"GET", b"HEAD", b"PUT", b"DELETE"]), st.data())
def test_every_plain_answer_is_read_without_h11_and_waited_for_until_whole(
    data: bytes, method: bytes, draw: st.DataObject
) -> None:
    parsed = parse_head(data, method)
    assert isinstance(parsed, Head)
    assert ours(data, parsed) == h11_reads(data, method)[1]
    cut = draw.draw(st.integers(0, parsed.size - 1))
    assert parse_head(data[:cut], method) is None
    assert h11_reads(data[:cut], method)[0] == "waiting"


@pytest.mark.parametrize(
    ("data", "status", "length", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, 5, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, 5, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n", 200, 9, False),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, 0, True),
        (b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", 404, 0, True),
    ],
)
def test_s3s_answers_are_plain(data: bytes, status: int, length: int, keep_alive: bool) -> None:
    head = parse_head(data, b"GET")
    assert isinstance(head, Head)
    assert (head.status, head.length, head.keep_alive) == (status, length, keep_alive)


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",  # read to the close
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000,
    ],
)
def test_other_forms_go_to_h11(data: bytes) -> None:
    assert parse_head(data, b"GET") is NOT_PLAIN


header_lists = st.lists(st.tuples(names, values), max_size=6)


@settings(max_examples=1500)
@given(
    st.sampled_from([b"GET", b"PUT", b"HEAD", b"DELETE", b"POST", b"G T", b"CONNECT"]),
    st.sampled_from([b"/", b"/bucket/key?uploads", b"/a%20b", b"/a b", b"/\x80", b""]),
    st.sampled_from([b"Host", b"host", b"HOST", b"Host "]),
    st.sampled_from([b"s3.test", b"127.0.0.1:9000", b"", b" padded "]),
    header_lists,
    st.integers(0, 3),
    st.booleans(),
)
def test_a_request_head_written_without_h11_is_h11s(
    method: bytes,
    target: bytes,
    host_name: bytes,
    host: bytes,
    headers: list[tuple[bytes, bytes]],
    body_length: int,
    host_last: bool,
) -> None:
    headers = [*headers, (host_name, host)] if host_last else [(host_name, host), *headers]
    written = request_head(method, target, headers, body_length)
    if written is None:
        return
    connection = h11.Connection(h11.CLIENT)
    sent = connection.send(h11.Request(method=method, target=target, headers=headers))
    assert sent == written
    if body_length:
        connection.send(h11.Data(data=b"x" * body_length))
    connection.send(h11.EndOfMessage())


def test_our_requests_are_written_without_h11() -> None:
    headers = [
        (b"host", b"127.0.0.1:8333"),
        (b"user-agent", b"trio-s3rpc/1.0"),
        (b"content-length", b"4"),
        (b"x-amz-date", b"20261204T020000Z"),
        (b"authorization", b"AWS4-HMAC-SHA256 Credential=a/b/c, Signature=0f"),
    ]
    written = request_head(b"PUT", b"/uploads/a.txt", headers, 4)
    assert written is not None
    assert written.startswith(b"PUT /uploads/a.txt HTTP/1.1\r\nhost: 127.0.0.1:8333\r\n")
    # A header h11 refuses is left for h11 to refuse.
    assert request_head(b"GET", b"/", [(b"host", b"h"), (b"x-a", b"a\r\nb")], 0) is None
    assert request_head(b"GET", b"/", [(b"user-agent", b"u"), (b"host", b"h")], 0) is None
    assert request_head(b"PUT", b"/", [(b"host", b"h"), (b"content-length", b"3")], 4) is None
