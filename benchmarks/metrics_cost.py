"""What metrics add to one call, in-process: the dispatcher with metrics off and on.

No sockets and no storage (ListBuckets and GetPublicURL never wait on I/O),
so what is left is the dispatcher's own work and what recording a call adds
to it. Off and on take turns; the best round of each is kept, which on a
shared machine is the figure least disturbed by other processes.
"""

from __future__ import annotations

import time

import trio

from trio_s3rpc.app import Application
from trio_s3rpc.config import parse_config
from trio_s3rpc.goridge.frame import CODEC_JSON, FrameDecoder, encode_rpc_request, parse_rpc_request

CALLS = (("s3.ListBuckets", b"{}"), ("s3.GetPublicURL", b'{"pathname": "a.txt"}'))
OFFLINE = {
    "region": "us-east-1",
    "endpoint": "http://127.0.0.1:9",  # never contacted: these calls make no request
    "credentials": {"key": "benchmark-key", "secret": "benchmark-secret"},
}


def _config(metrics: bool) -> dict[str, object]:
    s3: dict[str, object] = {
        "workers": 1,
        "servers": {"main": OFFLINE},
        "buckets": {"bench": {"server": "main", "bucket": "bench"}},
    }
    if metrics:
        s3["metrics"] = {"address": "127.0.0.1:0"}
    return {"rpc": {"listen": "tcp://127.0.0.1:0"}, "s3": s3}


def _request(method: str, body: bytes) -> object:
    decoder = FrameDecoder(1 << 20)
    decoder.receive_data(encode_rpc_request(1, method, CODEC_JSON, body))
    frame = decoder.next_frame()
    assert frame is not None
    return parse_rpc_request(frame)


def measure(rounds: int = 15, calls: int = 5000) -> list[tuple[str, float, float]]:
    """(method, best us/call with metrics off, best us/call with metrics on)."""

    async def run() -> list[tuple[str, float, float]]:
        dispatchers = {
            on: Application(parse_config(_config(on))).server._dispatcher for on in (False, True)
        }
        found = []
        for method, body in CALLS:
            request = _request(method, body)
            best = {False: float("inf"), True: float("inf")}
            for _ in range(rounds):
                for on, dispatcher in dispatchers.items():
                    started = time.perf_counter()
                    for _ in range(calls):
                        await dispatcher.answer(request)  # type: ignore[arg-type]
                    best[on] = min(best[on], (time.perf_counter() - started) / calls * 1e6)
            found.append((method, best[False], best[True]))
        return found

    return trio.run(run)


def notes() -> list[str]:
    return [
        f"in-process dispatcher, {method}: {off:.2f} us/call with metrics off, {on:.2f} us on "
        f"(+{on - off:.2f} us)"
        for method, off, on in measure()
    ]
