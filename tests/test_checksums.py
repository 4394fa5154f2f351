"""The checksum arithmetic: CRC32C, combining CRCs of pieces, and the stored text form.

Combining is what lets ReadFile check an object downloaded as parallel
ranges, and WriteFile one uploaded as parallel parts, without reading the
bytes twice; hypothesis holds it to the CRC of the joined bytes.
"""

from __future__ import annotations

import base64
import zlib
from random import Random

import crc32c as crc32c_extension
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc import checksums
from trio_s3rpc.checksums import (
    PartChecksums,
    RunningChecksum,
    crc32c,
    crc32c_combine,
    format_checksum,
    header_value,
    parse_checksum,
)
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.storage import metadata_headers, verify_checksum


def test_crc32c_check_value() -> None:
    # The CRC-32C catalogue's check value for "123456789" (RFC 3720 uses this CRC).
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283
    # Not zlib's CRC-32: the two must never be confused in stored values.
    assert crc32c(b"123456789") != zlib.crc32(b"123456789")


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_combine_equals_crc_of_concatenation(first: bytes, second: bytes) -> None:
    combined = crc32c_combine(crc32c(first), crc32c(second), len(second))
    assert combined == crc32c_extension.crc32c(first + second)


def test_combine_over_a_large_length() -> None:
    # Part-sized pieces exercise the high powers of x.
    first, second = b"\x5a" * 1000, bytes(range(256)) * (5 * 1024 * 4 + 3)
    assert crc32c_combine(crc32c(first), crc32c(second), len(second)) == crc32c(first + second)
    with pytest.raises(ValueError):
        crc32c_combine(1, 2, -1)


@given(st.lists(st.binary(max_size=200), max_size=12), st.randoms())
def test_pieces_completing_in_any_order_combine_in_number_order(
    pieces: list[bytes], random: Random
) -> None:
    collected = PartChecksums()
    order = list(range(len(pieces)))
    random.shuffle(order)
    for index in order:
        if index % 2:
            collected.add(index * 1000, pieces[index])
        else:
            collected.add_value(index * 1000, crc32c(pieces[index]), len(pieces[index]))
    assert collected.count == len(pieces)
    assert collected.length == sum(map(len, pieces))
    assert collected.whole() == crc32c(b"".join(pieces))


@given(st.lists(st.binary(max_size=100), max_size=8))
def test_running_checksum_follows_a_stream(chunks: list[bytes]) -> None:
    running = RunningChecksum()
    for chunk in chunks:
        running.update(chunk)
    assert running.length == sum(map(len, chunks))
    assert running.text() == format_checksum(crc32c(b"".join(chunks)))


def test_text_form_round_trips_and_rejects_other_algorithms() -> None:
    value = crc32c(b"hello")
    text = format_checksum(value)
    assert text == f"crc32c:{value:08x}"
    assert parse_checksum(text) == value
    assert parse_checksum(text.upper()) == value
    assert parse_checksum("crc32c:00000000") == 0
    for other in ["", "crc32c:", "crc32c:xyz", "crc32c:123", "sha256:" + "0" * 64, "crc32:0000"]:
        assert parse_checksum(other) is None, other


def test_header_value_is_what_s3_expects() -> None:
    # x-amz-checksum-crc32c is the base64 of the big-endian 4-byte CRC.
    value = crc32c(b"123456789")
    assert header_value(value) == base64.b64encode(bytes.fromhex("e3069283")).decode()
    assert header_value(0) == "AAAAAA=="


def test_mismatch_names_both_values() -> None:
    stored = format_checksum(crc32c(b"written"))
    with pytest.raises(RPCError) as error:
        verify_checksum(stored, crc32c(b"tampered"), "uploads", "a.txt")
    assert error.value.code is ErrorCode.S3_OPERATION_FAILED
    text = error.value.wire_text()
    assert "checksum mismatch" in text
    assert stored in text and format_checksum(crc32c(b"tampered")) in text
    assert "pathname: a.txt" in text
    # Matching, absent, or of an algorithm this server does not compute: no error.
    verify_checksum(stored, crc32c(b"written"), "uploads", "a.txt")
    verify_checksum("", crc32c(b"x"), "uploads", "a.txt")
    verify_checksum("sha256:" + "ab" * 32, crc32c(b"x"), "uploads", "a.txt")


def test_the_checksum_metadata_name_is_reserved() -> None:
    with pytest.raises(RPCError) as error:
        metadata_headers({"Trio-S3rpc-Checksum": "crc32c:00000000"})
    assert error.value.code is ErrorCode.INVALID_REQUEST
    assert "reserved" in error.value.message
    assert metadata_headers({"checksum": "mine"}) == {"x-amz-meta-checksum": "mine"}
    assert checksums.METADATA_HEADER == "x-amz-meta-trio-s3rpc-checksum"
