"""Decoding one s3.Write argument of 4 MiB, as the dispatcher does, per codec.

The time from the frame's body to the typed request (``decode_args`` with the
method's byte fields, then the request decoder): msgpack with ``content``
packed as *str* (as PHP packs every string) and JSON with it as base64, for
random bytes and for text. ``--tree`` names another checkout whose code is
timed in a child process, for a before/after in the same run.

    python -m benchmarks.codec_decode [--tree ../main] [--repeat 7]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZE = 4 << 20


def measure(repeat: int) -> dict[str, float]:
    import msgpack

    from trio_s3rpc.goridge.codecs import decode_args
    from trio_s3rpc.goridge.frame import CODEC_JSON, CODEC_MSGPACK
    from trio_s3rpc.rpc.decoding import RequestDecoder
    from trio_s3rpc.rpc.typed import WriteRequest

    decoder = RequestDecoder(WriteRequest)
    fields = getattr(decoder, "binary_fields", None)
    contents = {"random": os.urandom(SIZE), "text": (b"hello world, " * (SIZE // 13))[:SIZE]}
    figures: dict[str, float] = {}
    for kind, content in contents.items():
        bodies = {
            "msgpack": (
                CODEC_MSGPACK,
                msgpack.packb({"pathname": "a.bin", "content": content}, use_bin_type=False),
            ),
            "json": (
                CODEC_JSON,
                json.dumps(
                    {"pathname": "a.bin", "content": base64.b64encode(content).decode()}
                ).encode(),
            ),
        }
        for name, (codec, body) in bodies.items():
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                args = (
                    decode_args(codec, body) if fields is None else decode_args(codec, body, fields)
                )
                request = decoder.decode(args, codec == CODEC_JSON)
                times.append(time.perf_counter() - started)
                assert request.content == content
            figures[f"{name} {kind}"] = statistics.median(times) * 1000
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.json:
        print(json.dumps(measure(args.repeat)))
        return 0
    runs = {"this tree": measure(args.repeat)}
    if args.tree is not None:
        child = subprocess.run(
            [sys.executable, __file__, "--json", "--repeat", str(args.repeat)],
            env={**os.environ, "PYTHONPATH": str(args.tree.resolve())},
            capture_output=True,
            text=True,
            check=True,
        )
        runs[str(args.tree)] = json.loads(child.stdout)
    print(f"ms to decode one 4 MiB s3.Write argument (median of {args.repeat})")
    for name, figures in runs.items():
        print(f"{name}: " + ", ".join(f"{key} {value:.1f}" for key, value in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
