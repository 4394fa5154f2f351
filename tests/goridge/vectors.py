"""The request frames captured from PHP's spiral/goridge client, as test data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VECTORS_FILE = Path(__file__).with_name("php-requests.txt")


@dataclass(slots=True, frozen=True)
class Vector:
    description: str
    seq: int
    frame: bytes


def load_vectors(path: Path = VECTORS_FILE) -> list[Vector]:
    """Each case is a description line holding ``seq=N``, then the whole frame in hex."""
    lines = [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(lines) % 2:
        raise ValueError(f"{path}: a description without its hex line")
    vectors = []
    for description, hex_line in zip(lines[::2], lines[1::2], strict=True):
        match = re.search(r"\bseq=(\d+)", description)
        if match is None:
            raise ValueError(f"{path}: no seq= in {description!r}")
        vectors.append(Vector(description, int(match.group(1)), bytes.fromhex(hex_line)))
    return vectors


VECTORS = load_vectors()
VECTORS_BY_SEQ = {vector.seq: vector for vector in VECTORS}
