"""Content sniffing, without a network: each format from bytes made the way its writer makes them.

Where the standard library writes the format (gzip, zip, wave, json, xml),
the sample is its real output; the others are their specified headers
followed by data, which is all the sniffer reads.
"""

from __future__ import annotations

import gzip
import io
import json
import secrets
import struct
import wave
import zipfile
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc.sniff import SNIFF_BYTES, content_type_of, sniff


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\xff\x00" * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.txt", "hello")
    return out.getvalue()


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\x00\x01" * 800)
    return out.getvalue()


def iso_media(major: bytes, *compatible: bytes) -> bytes:
    brands = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands + b"\x00\x00\x00\x08free"


def ebml(doc_type: bytes) -> bytes:
    body = b"\x42\x86\x81\x01" + b"\x42\x82" + bytes([0x80 | len(doc_type)]) + doc_type
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + b"\x18\x53\x80\x67"


def ogg(packet: bytes) -> bytes:
    header = b"OggS\x00\x02" + b"\x00" * 8 + b"\x01\x00\x00\x00" + b"\x00" * 8 + b"\x01"
    return header + bytes([len(packet)]) + packet


SAMPLES: dict[str, bytes] = {
    "image/png": png(),
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + secrets.token_bytes(64),
    "image/gif": b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + secrets.token_bytes(32),
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + secrets.token_bytes(32),
    "image/bmp": b"BM" + struct.pack("<IHHII", 70, 0, 0, 54, 40) + secrets.token_bytes(40),
    "image/tiff": b"II*\x00\x08\x00\x00\x00" + secrets.token_bytes(32),
    "image/x-icon": b"\x00\x00\x01\x00\x01\x00\x10\x10" + secrets.token_bytes(32),
    "image/avif": iso_media(b"avif", b"mif1", b"miaf"),
    "image/heic": iso_media(b"heic", b"mif1", b"heic"),
    "image/svg+xml": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "application/zip": zip_archive(),
    "application/gzip": gzip.compress(b"some text " * 100),
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00" + secrets.token_bytes(64),
    "audio/wav": wav(),
    "audio/flac": b"fLaC\x00\x00\x00\x22" + secrets.token_bytes(34),
    "audio/ogg": ogg(b"\x01vorbis" + secrets.token_bytes(22)),
    "audio/opus": ogg(b"OpusHead\x01\x02" + secrets.token_bytes(9)),
    "audio/mp4": iso_media(b"M4A ", b"M4A ", b"mp42", b"isom"),
    "video/mp4": iso_media(b"isom", b"isom", b"iso2", b"avc1", b"mp41"),
    "video/quicktime": iso_media(b"qt  ", b"qt  "),
    "video/webm": ebml(b"webm"),
    "video/x-matroska": ebml(b"matroska"),
    "video/ogg": ogg(b"\x80theora" + secrets.token_bytes(34)),
    "video/x-msvideo": b"RIFF\x00\x10\x00\x00AVI LIST" + secrets.token_bytes(32),
    "video/mp2t": (b"\x47\x40\x00\x10" + b"\xff" * 184) * 3,
    "application/json": json.dumps({"name": "ann", "tags": ["a", "b"], "n": 1}).encode(),
    "application/xml": b'<?xml version="1.0" encoding="UTF-8"?>\n<feed><entry/></feed>',
    "text/html": b"<!DOCTYPE html>\n<html><head><title>t</title></head><body></body></html>",
    "text/plain": "Grüße, a plain note\nwith two lines\n".encode(),
}


@pytest.mark.parametrize("expected", sorted(SAMPLES))
def test_each_format_is_recognised_from_its_first_bytes(expected: str) -> None:
    assert sniff(SAMPLES[expected]) == expected


@pytest.mark.parametrize("expected", sorted(SAMPLES))
def test_a_pathname_without_a_known_extension_takes_the_sniffed_type(expected: str) -> None:
    assert content_type_of("uploads/0f3a9c", SAMPLES[expected]) == expected
    assert content_type_of("uploads/file.unknownext", SAMPLES[expected]) == expected


def test_a_known_extension_wins_over_the_content() -> None:
    assert content_type_of("notes.txt", SAMPLES["image/png"]) == "text/plain"
    assert content_type_of("photo.JPG", b"") == "image/jpeg"


@pytest.mark.parametrize(
    "text",
    [
        b'  \n[{"id": 1}, {"id": 2}]',
        b'{"truncated": "' + b"x" * 600,  # more than is sniffed: the rest is not needed
        b"[1, 2, 3]",
        b"[]",
        b"\xef\xbb\xbf{}",
    ],
)
def test_json_documents_even_cut_off(text: bytes) -> None:
    assert sniff(text) == "application/json"


@pytest.mark.parametrize(
    "text",
    [
        b"<html lang='en'>",
        b"\n\n<HTML>",
        b"<!-- generated -->\n<div>",
        b"<p>one paragraph</p>",
        b"<body>",
    ],
)
def test_html_from_its_leading_tag(text: bytes) -> None:
    assert sniff(text) == "text/html"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<pre>not a p tag", "text/plain"),  # '<p' must end the tag name
        (b"BMW 320i, 2012, blue", "text/plain"),  # 'BM' alone is not a bitmap
        (b"{not json", "text/plain"),
        (b"[citation needed]", "text/plain"),
        (b"", "application/octet-stream"),
        (b"\x00\x01\x02\x03 binary", "application/octet-stream"),
        (b"RIFF\x00\x00\x00\x00XYZW", "application/octet-stream"),  # an unknown RIFF form
        (b"\xff\xd9", "application/octet-stream"),  # a JPEG end marker is no start
    ],
)
def test_near_misses_are_not_taken_for_a_format(data: bytes, expected: str) -> None:
    assert sniff(data) == expected


def test_only_the_first_bytes_are_read() -> None:
    head = SAMPLES["image/png"][:16]
    assert sniff(head + secrets.token_bytes(10 * SNIFF_BYTES)) == "image/png"
    # Text that turns binary past the sniffed window is judged by the window.
    assert sniff(b"a" * SNIFF_BYTES + b"\x00\x00") == "text/plain"


@given(st.binary(max_size=2 * SNIFF_BYTES))
def test_any_bytes_give_a_content_type(data: bytes) -> None:
    answer = sniff(data)
    assert "/" in answer and answer == answer.strip()
