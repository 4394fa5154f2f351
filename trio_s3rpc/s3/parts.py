"""Part planning within S3's limits: how an object of a given size is cut into parts.

S3 takes at most 10,000 parts per multipart upload, parts of 5 MiB to 5 GiB
(the last may be smaller) and objects of at most 5 TiB. As s3transfer's
``ChunksizeAdjuster`` does, the configured part size is a wish: it grows (to
a whole number of MiB) until the object fits in 10,000 parts. An object
above 5 TiB is refused here, before any request is sent. A chunked upload,
whose size is not known in advance, keeps its part size, so it can hold at
most ``part_size * 10,000`` bytes; :func:`upload_limit` says how many.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from trio_s3rpc.s3.limits import MAX_OBJECT_SIZE, MAX_PARTS, MIB


class PartLimitError(ValueError):
    """An upload S3 would refuse: too large for one object or for 10,000 parts."""


@dataclass(slots=True, frozen=True)
class PartPlan:
    """An object of ``size`` bytes cut into ``parts`` parts of ``part_size`` (the last shorter)."""

    size: int
    part_size: int

    @property
    def parts(self) -> int:
        return -(-self.size // self.part_size)

    def spans(self) -> Iterator[tuple[int, int, int]]:
        """Each part's number (from 1), offset and length."""
        for number, offset in enumerate(range(0, self.size, self.part_size), 1):
            yield number, offset, min(self.part_size, self.size - offset)


def plan_parts(size: int, part_size: int, max_parts: int = MAX_PARTS) -> PartPlan:
    """The parts of a ``size``-byte upload: ``part_size``, grown to fit ``max_parts``
    (S3's 10,000, or fewer when part numbers are kept for other uses).

    Raises :class:`PartLimitError` for an object above 5 TiB.
    """
    if size < 0 or part_size <= 0:
        raise ValueError(f"cannot plan {size} bytes in parts of {part_size}")
    if size > MAX_OBJECT_SIZE:
        raise PartLimitError(
            f"the object is {size} bytes, more than S3's limit of {MAX_OBJECT_SIZE} bytes (5 TiB)"
        )
    if -(-size // part_size) > max_parts:
        needed = -(-size // max_parts)
        # Whole MiB, as readable in logs; at 5 TiB this is 525 MiB, below 5 GiB.
        part_size = -(-needed // MIB) * MIB
    return PartPlan(size, part_size)


def upload_limit(part_size: int) -> int:
    """The most bytes an upload of fixed ``part_size`` parts can hold."""
    return min(part_size * MAX_PARTS, MAX_OBJECT_SIZE)
