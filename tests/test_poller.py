"""The poller: sockets reported while they have bytes, paused, forgotten, and an owner's
bug kept to its own socket; the same for epoll and for a task per socket."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
import trio.testing

from trio_s3rpc import poller as poller_module
from trio_s3rpc.poller import Poller, open_poller


@pytest.fixture(params=["epoll", "tasks"])
async def poller(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Poller]:
    if request.param == "epoll" and not poller_module.HAS_EPOLL:
        pytest.skip("no epoll on this system")
    monkeypatch.setattr(poller_module, "HAS_EPOLL", request.param == "epoll")
    async with open_poller() as running:
        yield running


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for left, right in made:
        left.close()
        right.close()


def pair(made: list[tuple[socket.socket, socket.socket]]) -> tuple[socket.socket, socket.socket]:
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    made.append((left, right))
    return left, right


class ByteReader:
    """Reads one byte per call, as a reader that stops before the socket is empty."""

    def __init__(self, sock: socket.socket, log: list[object] | None = None) -> None:
        self.sock = sock
        self.got = b""
        self.failures: list[BaseException] = []
        self.log = log

    def readable(self) -> None:
        try:
            self.got += self.sock.recv(1)
        except BlockingIOError:
            return
        if self.log is not None:
            self.log.append(self)

    def failed(self, exc: BaseException) -> None:
        self.failures.append(exc)


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_a_socket_is_reported_for_as_long_as_it_has_bytes(
    poller: Poller, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    ours, theirs = pair(pairs)
    reader = ByteReader(ours)
    poller.register(ours.fileno(), reader)
    theirs.send(b"abc")
    with trio.fail_after(5):
        while reader.got != b"abc":
            await trio.sleep(0.001)
    theirs.send(b"d")
    with trio.fail_after(5):
        while reader.got != b"abcd":
            await trio.sleep(0.001)


async def test_a_paused_socket_is_not_reported_until_resumed(
    poller: Poller, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    ours, theirs = pair(pairs)
    reader = ByteReader(ours)
    poller.register(ours.fileno(), reader)
    poller.pause(ours.fileno())
    theirs.send(b"xy")
    await trio.sleep(0.05)
    await settle()
    assert reader.got == b""
    poller.resume(ours.fileno())
    with trio.fail_after(5):
        while reader.got != b"xy":
            await trio.sleep(0.001)


async def test_an_unregistered_socket_is_not_reported(
    poller: Poller, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    ours, theirs = pair(pairs)
    reader = ByteReader(ours)
    poller.register(ours.fileno(), reader)
    poller.unregister(ours.fileno())
    poller.unregister(ours.fileno())  # again: harmless
    theirs.send(b"z")
    await trio.sleep(0.05)
    await settle()
    assert reader.got == b""


class Broken(ByteReader):
    def readable(self) -> None:
        raise RuntimeError("a bug in the reader")


async def test_an_owner_that_raises_is_told_and_the_others_are_still_served(
    poller: Poller,
    pairs: list[tuple[socket.socket, socket.socket]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad_ours, bad_theirs = pair(pairs)
    good_ours, good_theirs = pair(pairs)
    broken = Broken(bad_ours)
    good = ByteReader(good_ours)
    with caplog.at_level(logging.ERROR, logger="trio_s3rpc"):
        poller.register(bad_ours.fileno(), broken)
        poller.register(good_ours.fileno(), good)
        bad_theirs.send(b"!")
        with trio.fail_after(5):
            while not broken.failures:
                await trio.sleep(0.001)
        good_theirs.send(b"ok")
        with trio.fail_after(5):
            while good.got != b"ok":
                await trio.sleep(0.001)
    assert [str(exc) for exc in broken.failures] == ["a bug in the reader"]
    assert "internal_error id=" in caplog.text
    await trio.sleep(0.05)
    assert len(broken.failures) == 1  # forgotten after the first: not reported again


async def test_more_sockets_than_one_batch_are_all_served_and_other_tasks_run_between(
    poller: Poller,
    pairs: list[tuple[socket.socket, socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    # Three batches at least: trio runs the tasks of one scheduling round in either
    # order, so with two batches a probe may run before the first and after the
    # second; with three it runs between two of them whatever the order.
    batch = 16
    monkeypatch.setattr(poller_module, "MAX_EVENTS", batch)
    served: list[object] = []
    readers = []
    for _ in range(2 * batch + 5):
        ours, theirs = pair(pairs)
        reader = ByteReader(ours, served)
        poller.register(ours.fileno(), reader)
        readers.append(reader)
        theirs.send(b"1")
    seen: list[int] = []  # how many had been served, each time another task ran

    async def probing() -> None:
        while True:
            seen.append(len(served))
            await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probing)
            while sum(reader.got == b"1" for reader in readers) < len(readers):
                await trio.sleep(0.001)
            nursery.cancel_scope.cancel()
    assert sorted(served, key=id) == sorted(readers, key=id)  # each once
    if "epoll" in request.node.name:
        # One task serves every socket: it lets others run between its batches.
        assert any(0 < count < len(readers) for count in seen), seen
