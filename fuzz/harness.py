"""The loop shared by the fuzz targets: run one target for a given time, or replay inputs.

A target is a ``fuzz_one(data)`` function that may raise only the exceptions
it declares as expected (the library's own rejections); anything else,
including a failed internal consistency check, is a bug. Inputs come from
three sources in turn until the time is up: hypothesis batches (random bytes,
seeds, and seeds mutated by drawn edits, shrunk to a minimal input on
failure), and cheaper plain-random mutation rounds. With ``--atheris`` the
target runs under atheris (libFuzzer) instead. A failing input is printed in
hex and saved as ``crash-<sha1>.bin``; pass such files as arguments to replay.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
INTERESTING_WORDS = (0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)
MAX_INPUT = 4096


@dataclass(slots=True)
class Target:
    name: str
    fuzz_one: Callable[[bytes], None]
    expected: tuple[type[Exception], ...]
    seeds: Sequence[bytes]
    repair: Callable[[bytes], bytes] = bytes
    """Re-validates what a mutation broke on purpose (e.g. a frame's CRC) so deeper code runs."""
    generate: Callable[[random.Random], bytes] | None = None
    """Makes a fresh well-typed input (a record of the target's own grammar), when it has one:
    plain-random rounds then alternate generated inputs with mutated ones."""
    extra: st.SearchStrategy[bytes] | None = None
    """More inputs for the hypothesis batches (e.g. the generated ones, shrinkable)."""


class Failure(Exception):
    """The target raised something unexpected on ``data`` (the cause says what)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data.hex())
        self.data = data


def find_failure(exc: BaseException) -> Failure | None:
    """The Failure in ``exc``; hypothesis groups distinct failures in an ExceptionGroup."""
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_failure(inner)
            if found is not None:
                return found
    return None


# --- mutation -------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random, seeds: Sequence[bytes]) -> bytes:
    """One random edit of the kind that breaks length fields and framing."""
    buffer = bytearray(data)
    edit = rng.randrange(7)
    position = rng.randrange(len(buffer) + 1)
    if edit == 0 and buffer:
        buffer[min(position, len(buffer) - 1)] ^= 1 << rng.randrange(8)
    elif edit == 1 and buffer:
        buffer[min(position, len(buffer) - 1)] = rng.randrange(256)
    elif edit == 2:
        buffer[position:position] = rng.randbytes(rng.randrange(1, 9))
    elif edit == 3:
        del buffer[position : position + rng.randrange(1, 17)]
    elif edit == 4:
        del buffer[position:]
    elif edit == 5:
        word = rng.choice(INTERESTING_WORDS).to_bytes(4, "little")
        buffer[position : position + 4] = word
    else:
        buffer += rng.choice(seeds)
    return bytes(buffer[:MAX_INPUT])


def mutated_seed(data: bytes, rng: random.Random, target: Target) -> bytes:
    for _ in range(rng.randrange(1, 5)):
        data = mutate(data, rng, target.seeds)
    return target.repair(data) if rng.random() < 0.5 else data


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    mutated = st.builds(
        mutated_seed,
        st.sampled_from(list(target.seeds)),
        st.randoms(use_true_random=False),
        st.just(target),
    )
    strategies = [
        st.binary(max_size=256),
        st.sampled_from(list(target.seeds)),
        mutated,
        st.binary(max_size=64).map(target.repair),
    ]
    if target.extra is not None:
        strategies.append(target.extra)
    return st.one_of(strategies)


# --- running --------------------------------------------------------------------------


def run_once(target: Target, data: bytes) -> None:
    """Raise Failure if ``data`` makes the target raise anything unexpected."""
    try:
        target.fuzz_one(data)
    except target.expected:
        pass
    except Exception as exc:
        raise Failure(data) from exc


def hypothesis_batch(target: Target, examples: int) -> int:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(target))
    def batch(data: bytes) -> None:
        run_once(target, data)

    batch()
    return examples


def random_batch(target: Target, rng: random.Random, until: float) -> int:
    count = 0
    while time.monotonic() < until:
        for _ in range(200):
            if target.generate is not None and rng.random() < 0.5:
                generated = target.generate(rng)
                run_once(target, generated)
                run_once(target, mutated_seed(generated, rng, target))
                count += 1
            else:
                run_once(target, mutated_seed(rng.choice(target.seeds), rng, target))
        count += 200
    return count


def fuzz_for(target: Target, seconds: float, examples: int, rng: random.Random) -> int:
    """Alternate hypothesis and plain mutation rounds until ``seconds`` pass; return runs."""
    deadline = time.monotonic() + seconds
    runs = 0
    for seed in target.seeds:
        run_once(target, seed)
    while time.monotonic() < deadline:
        runs += hypothesis_batch(target, examples)
        runs += random_batch(target, rng, min(deadline, time.monotonic() + 1.0))
    return runs


def report_failure(target: Target, failure: Failure) -> None:
    cause = failure.__cause__
    if cause is not None:
        traceback.print_exception(cause)
    path = Path(f"crash-{hashlib.sha1(failure.data).hexdigest()}.bin")
    path.write_bytes(failure.data)
    print(f"{target.name}: FAILED on input (saved to {path}):\n{failure.data.hex()}", flush=True)


def replay(target: Target, paths: Sequence[str]) -> int:
    for name in paths:
        data = Path(name).read_bytes()
        try:
            run_once(target, data)
        except Failure as failure:
            report_failure(target, failure)
            return 1
        print(f"{name}: ok")
    return 0


def run_atheris(target: Target, seconds: float) -> int:
    try:
        import atheris  # type: ignore[import-untyped]
    except ImportError:
        print("--atheris needs `pip install atheris`", file=sys.stderr)
        return 2

    def test_one_input(data: bytes) -> None:
        with contextlib.suppress(*target.expected):
            target.fuzz_one(data)

    corpus = Path(tempfile.mkdtemp(prefix=f"{target.name}-corpus-"))
    for index, seed in enumerate(target.seeds):
        (corpus / f"seed-{index}").write_bytes(seed)
    atheris.instrument_all()
    atheris.Setup(
        [sys.argv[0], f"-max_total_time={int(seconds)}", f"-max_len={MAX_INPUT}", str(corpus)],
        test_one_input,
    )
    atheris.Fuzz()
    return 0


def main(target: Target, argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Fuzz {target.name}.")
    parser.add_argument("inputs", nargs="*", help="replay these input files instead of fuzzing")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz")
    parser.add_argument("--examples", type=int, default=500, help="inputs per hypothesis batch")
    parser.add_argument("--seed", type=int, default=None, help="seed of the plain-random rounds")
    parser.add_argument("--atheris", action="store_true", help="run under atheris instead")
    args = parser.parse_args(argv)
    if args.inputs:
        return replay(target, args.inputs)
    if args.atheris:
        return run_atheris(target, args.seconds)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    started = time.monotonic()
    try:
        runs = fuzz_for(target, args.seconds, args.examples, random.Random(seed))
    except Exception as exc:
        failure = find_failure(exc)
        if failure is None:
            raise
        report_failure(target, failure)
        return 1
    elapsed = time.monotonic() - started
    print(f"{target.name}: {runs} inputs in {elapsed:.1f}s, no failures (seed {seed})")
    return 0
