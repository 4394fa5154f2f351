"""The dispatcher's two ways to answer a method that never awaits: ``answer_now`` (no
coroutine, used by the connection's reader) gives what ``answer`` gives, byte for byte,
errors included, and the metrics count each call once either way."""

from __future__ import annotations

import json

import msgpack
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from trio_s3rpc.app import Application
from trio_s3rpc.config import parse_config
from trio_s3rpc.goridge.frame import CODEC_JSON, CODEC_MSGPACK, FrameDecoder, RPCRequest
from trio_s3rpc.rpc.dispatch import Dispatcher

OFFLINE = {
    "region": "us-east-1",
    "endpoint": "http://127.0.0.1:9",  # never contacted: these methods make no request
    "credentials": {"key": "test-key", "secret": "test-secret"},
}


def _dispatcher(metrics: bool) -> Dispatcher:
    s3: dict[str, object] = {
        "workers": 1,
        "default": "uploads",
        "servers": {"main": OFFLINE},
        "buckets": {
            "uploads": {"server": "main", "bucket": "uploads-bucket", "visibility": "public"},
            "private": {"server": "main", "bucket": "private-bucket"},
        },
    }
    if metrics:
        s3["metrics"] = {"address": "127.0.0.1:0"}
    config = {"rpc": {"listen": "tcp://127.0.0.1:0"}, "s3": s3}
    dispatcher: Dispatcher = Application(parse_config(config)).server._dispatcher
    return dispatcher


ARGUMENTS = [
    {},
    [],
    None,
    {"pathname": "a.txt"},
    {"bucket": "private", "pathname": "dir/b c.txt", "expires_in": 60},
    {"bucket": "missing", "pathname": "a.txt"},
    {"pathname": 7},
    {"pathname": "a.txt", "expires_in": "soon"},
    {"unexpected": True},
]
BROKEN_BODIES = [b"{", b"\xff", b'"text"', b"[1,2]"]


def _bodies(codec: int) -> list[bytes]:
    if codec == CODEC_JSON:
        return [json.dumps(args).encode() for args in ARGUMENTS] + BROKEN_BODIES
    return [msgpack.packb(args) for args in ARGUMENTS] + [b"\xc1", b"\x92\x01"]


def _now_methods(dispatcher: Dispatcher) -> list[str]:
    return sorted(name for name, m in dispatcher.registry.inline.items() if m.now is not None)


def test_list_buckets_and_get_public_url_never_await() -> None:
    assert _now_methods(_dispatcher(False)) == ["s3.GetPublicURL", "s3.ListBuckets"]


@pytest.mark.parametrize("codec", [CODEC_JSON, CODEC_MSGPACK])
def test_answer_now_gives_what_answer_gives(codec: int) -> None:
    dispatcher = _dispatcher(False)

    async def check() -> None:
        for name in _now_methods(dispatcher):
            method = dispatcher.registry.inline[name]
            for seq, body in enumerate(_bodies(codec)):
                request = RPCRequest(seq, name, codec, body)
                now = dispatcher.answer_now(request, method)
                assert now is not None, (name, body)
                # The presigned URL of GetPublicURL carries the second it was made.
                with trio.move_on_after(5):
                    later = await dispatcher.answer(request, method)
                if b"X-Amz-Date" in now:
                    assert now.split(b"X-Amz-Date")[0] == later.split(b"X-Amz-Date")[0]
                else:
                    assert now == later, (name, body)

    trio.run(check)


def test_answers_are_whole_frames_and_errors_name_the_field() -> None:
    dispatcher = _dispatcher(False)
    method = dispatcher.registry.inline["s3.GetPublicURL"]
    frame = dispatcher.answer_now(
        RPCRequest(9, "s3.GetPublicURL", CODEC_JSON, b'{"pathname":7}'), method
    )
    assert frame is not None
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    answer = decoder.next_frame()
    assert answer is not None and decoder.buffered == 0
    assert answer.options[0] == 9
    assert b"field 'pathname'" in answer.payload


def test_a_call_under_transfer_control_is_left_to_answer() -> None:
    """transfer_id and timeout make a call one TransferStatus can see: answer() runs it."""
    dispatcher = _dispatcher(False)
    method = dispatcher.registry.inline["s3.ListBuckets"]
    for body in (b'{"transfer_id":"t-1"}', b'{"timeout":5}'):
        assert (
            dispatcher.answer_now(RPCRequest(1, "s3.ListBuckets", CODEC_JSON, body), method) is None
        )

    async def run() -> bytes:
        return await dispatcher.answer(
            RPCRequest(1, "s3.ListBuckets", CODEC_JSON, b'{"transfer_id":"t-1"}'), method
        )

    assert b'"uploads"' in trio.run(run)
    assert dispatcher.control.status("t-1").state == "completed"


def test_metrics_count_each_call_once_either_way() -> None:
    dispatcher = _dispatcher(True)
    metrics = dispatcher.metrics
    assert metrics is not None
    method = dispatcher.registry.inline["s3.ListBuckets"]

    def calls() -> float:
        metrics.flush()
        exposition = metrics.metrics.render().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == "rr_s3_operations_total"
            and sample.labels.get("operation") == "list_buckets"
        )

    before = calls()
    for _ in range(3):
        assert dispatcher.answer_now(RPCRequest(1, "s3.ListBuckets", CODEC_JSON, b"{}"), method)
    assert (
        dispatcher.answer_now(RPCRequest(1, "s3.ListBuckets", CODEC_JSON, b'{"timeout":5}'), method)
        is None
    )

    async def run() -> None:
        await dispatcher.answer(
            RPCRequest(1, "s3.ListBuckets", CODEC_JSON, b'{"timeout":5}'), method
        )

    trio.run(run)
    assert calls() - before == 4
