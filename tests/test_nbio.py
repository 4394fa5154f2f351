"""nbio: non-blocking reads and writes on socketpairs, tried first, waiting only when needed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from trio_s3rpc import nbio

# Larger than any socketpair buffer, so a write of it cannot go at once.
LARGE = 8 * 1024 * 1024


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def fill(sock: socket.socket) -> int:
    """Write until the socket takes no more; how many bytes it took."""
    total = 0
    while sent := nbio.write_now(sock.fileno(), b"x" * 65536):
        total += sent
    return total


async def read_exactly(sock: socket.socket, size: int) -> bytes:
    receiver = nbio.Receiver(sock)
    pieces = []
    while size:
        data = await receiver.receive_some(min(size, 65536))
        assert data, "the stream ended early"
        pieces.append(data)
        size -= len(data)
    return b"".join(pieces)


def test_read_now_answers_none_while_nothing_is_there_and_empty_at_the_end(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    assert nbio.read_now(right.fileno(), 100) is None
    left.send(b"hello")
    assert nbio.read_now(right.fileno(), 100) == b"hello"
    left.close()
    assert nbio.read_now(right.fileno(), 100) == b""


def test_write_now_takes_what_fits_then_nothing(pair: tuple[socket.socket, socket.socket]) -> None:
    left, _ = pair
    taken = nbio.write_now(left.fileno(), b"y" * LARGE)
    assert 0 < taken < LARGE
    fill(left)
    assert nbio.write_now(left.fileno(), b"z") == 0


def test_write_now_to_a_peer_that_left_is_a_broken_resource(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    right.close()
    with pytest.raises(trio.BrokenResourceError):
        nbio.write_now(left.fileno(), b"hello")


async def test_send_all_writes_a_message_larger_than_the_buffer_whole_and_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    message = bytes(range(256)) * (LARGE // 256)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(nbio.send_all, left, message)
        received = await read_exactly(right, len(message))
    assert received == message


async def test_send_all_gives_up_when_one_wait_outlasts_its_timeout(
    pair: tuple[socket.socket, socket.socket], autojump_clock: trio.testing.MockClock
) -> None:
    left, _ = pair
    fill(left)
    started = trio.current_time()
    with pytest.raises(trio.TooSlowError, match="could not write within 5 s"):
        await nbio.send_all(left, b"more", timeout=5)
    assert trio.current_time() - started == pytest.approx(5)


async def test_send_all_to_a_peer_that_left_is_a_broken_resource(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    right.close()
    with pytest.raises(trio.BrokenResourceError):
        await nbio.send_all(left, b"hello")


async def test_receive_waits_for_data_and_ends_with_empty_when_the_peer_closes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    receiver = nbio.Receiver(right)

    async def speak() -> None:
        await trio.testing.wait_all_tasks_blocked()
        left.send(b"late")
        await trio.testing.wait_all_tasks_blocked()
        left.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(speak)
        assert await receiver.receive_some(100, wait_first=True) == b"late"
        assert await receiver.receive_some(100) == b""


async def test_receive_times_out_after_its_timeout(
    pair: tuple[socket.socket, socket.socket], autojump_clock: trio.testing.MockClock
) -> None:
    _, right = pair
    with pytest.raises(trio.TooSlowError, match="no data within 3 s"):
        await nbio.Receiver(right).receive_some(100, timeout=3)
    assert trio.current_time() == pytest.approx(3)


async def test_receive_from_a_peer_that_reset_is_a_broken_resource() -> None:
    with trio.socket.socket() as listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = await listener.accept()
        with client, server:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            client.close()  # linger 0: a reset, not an orderly close
            with pytest.raises(trio.BrokenResourceError, match="reset"):
                await nbio.Receiver(server).receive_some(100, wait_first=True)


async def test_a_receive_cancelled_while_it_waits_takes_nothing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    receiver = nbio.Receiver(right)
    with trio.move_on_after(0.01) as scope:
        await receiver.receive_some(100)
    assert scope.cancelled_caught
    left.send(b"kept")
    assert await receiver.receive_some(100) == b"kept"


async def test_reads_that_never_wait_still_checkpoint_every_yield_every(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    left.send(b"r" * (nbio.YIELD_EVERY * 4))
    receiver = nbio.Receiver(right)
    taken = 0
    with trio.CancelScope() as scope:
        scope.cancel()
        while True:
            await receiver.receive_some(1)
            taken += 1
    # Cancelled at the first checkpoint: the YIELD_EVERY-th read, which kept its byte.
    assert taken == nbio.YIELD_EVERY - 1
    assert nbio.read_now(right.fileno(), 1000) == b"r" * (nbio.YIELD_EVERY * 3)


async def test_a_wait_on_a_socket_closed_meanwhile_is_a_closed_resource(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _, right = pair

    async def close_it() -> None:
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.notify_closing(right)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_it)
        with pytest.raises(trio.ClosedResourceError):
            await nbio.Receiver(right).receive_some(100)


async def test_sender_keeps_concurrent_messages_whole(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    sender = nbio.Sender(left)
    first, second, third = b"a" * LARGE, b"b" * LARGE, b"c" * 10
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.send, first)
        await trio.testing.wait_all_tasks_blocked()  # first is part-way, holding the lock
        nursery.start_soon(sender.send, second)
        await trio.testing.wait_all_tasks_blocked()  # second queued first
        nursery.start_soon(sender.send, third)
        received = await read_exactly(right, 2 * LARGE + 10)
    assert received == first + second + third


async def test_a_message_begun_by_send_now_is_finished_before_the_next(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The reader's way (send_now, then send_rest for what did not fit): a message sent
    meanwhile by another task waits its turn, and send_now of a third answers -1."""
    left, right = pair
    sender = nbio.Sender(left)
    first, second = b"a" * LARGE, b"b" * 1000
    sent = sender.send_now(first)
    assert 0 < sent < LARGE
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.send_rest, first, sent)
        await trio.testing.wait_all_tasks_blocked()  # first's rest is waiting for room
        assert sender.send_now(b"c") == -1  # nothing written: its turn has not come
        nursery.start_soon(sender.send, second)
        received = await read_exactly(right, LARGE + 1000)
    assert received == first + second
    assert sender.send_now(b"d") == 1


async def test_a_message_begun_holds_its_turn_before_its_rest_has_a_task(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The connection's reader begins an answer and hands its rest to a task started
    later: a message another task sends first, before that task runs, still waits."""
    left, right = pair
    sender = nbio.Sender(left)
    first, second = b"a" * LARGE, b"b" * 1000
    sent = sender.send_now(first)
    assert 0 < sent < LARGE
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.send, second)
        await trio.testing.wait_all_tasks_blocked()  # second is waiting for its turn
        nursery.start_soon(sender.send_rest, first, sent)
        received = await read_exactly(right, LARGE + 1000)
    assert received == first + second


async def test_a_shielded_message_is_finished_though_its_sender_is_cancelled(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    sender = nbio.Sender(left)
    message = b"m" * LARGE
    received: list[bytes] = []

    async def read_all() -> None:
        received.append(await read_exactly(right, LARGE + 4))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        with trio.CancelScope() as scope:
            scope.cancel()
            await sender.send(message, shield=True)
        await sender.send(b"next")
    assert received == [message + b"next"]


async def test_an_unshielded_message_stops_where_it_is_cancelled(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    with trio.CancelScope() as scope:
        scope.cancel()
        await nbio.Sender(left).send(b"u" * LARGE)
    assert scope.cancelled_caught
    written = 0
    while (data := nbio.read_now(right.fileno(), 1 << 20)) is not None:
        written += len(data)
    assert 0 < written < LARGE


async def test_after_a_message_cancelled_mid_way_the_sender_refuses_the_next(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, _ = pair
    sender = nbio.Sender(left)
    with trio.CancelScope() as scope:
        scope.cancel()
        await sender.send(b"u" * LARGE)
    assert scope.cancelled_caught
    with pytest.raises(trio.BrokenResourceError, match="cut short"):
        await sender.send(b"next")


async def test_after_a_message_cut_short_the_sender_refuses_the_next(
    pair: tuple[socket.socket, socket.socket], autojump_clock: trio.testing.MockClock
) -> None:
    left, _ = pair
    sender = nbio.Sender(left)
    with pytest.raises(trio.TooSlowError):
        await sender.send(b"t" * LARGE, shield=True, timeout=10)
    with pytest.raises(trio.BrokenResourceError, match="cut short"):
        await sender.send(b"next")
