"""Content types from an object's first bytes, for pathnames whose extension says nothing.

A write whose pathname has no extension, or one :mod:`trio_s3rpc.mime` does
not know, would otherwise be stored as ``application/octet-stream``. Here the
first :data:`SNIFF_BYTES` bytes decide among the formats web applications
upload: images, PDF, zip and gzip, audio and video containers, and
JSON/XML/HTML/SVG text. The signatures follow the WHATWG MIME Sniffing
standard and the formats' own specifications; it is pure Python, reads no
file and needs no system library (no libmagic). Anything unrecognised stays
``application/octet-stream``: a wrong guess is worse than none.
"""

from __future__ import annotations

import codecs
import re

from trio_s3rpc.mime import DEFAULT_CONTENT_TYPE, content_type_for

# As browsers do: the resource header is at most 512 bytes.
SNIFF_BYTES = 512

# (offset, signature, content type), checked in order.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"\x00\x00\x01\x00", "image/x-icon"),
    (0, b"\xff\x0a", "image/jxl"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "image/jxl"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),  # an empty archive
    (0, b"\x1f\x8b\x08", "application/gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (0, b"\x28\xb5\x2f\xfd", "application/zstd"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"MThd\x00\x00\x00\x06", "audio/midi"),
    (0, b"wOFF", "font/woff"),
    (0, b"wOF2", "font/woff2"),
    (0, b"\x00asm", "application/wasm"),
)

# ISO base media (MP4 family) brands: major brand -> content type.
_FTYP_BRANDS = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
    b"M4V ": "video/mp4",
    b"3gp4": "video/3gpp",
    b"3gp5": "video/3gpp",
    b"3g2a": "video/3gpp2",
}

_RIFF_FORMS = {b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo", b"WEBP": "image/webp"}

_HTML_TAGS = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<body",
    b"<script",
    b"<iframe",
    b"<h1",
    b"<div",
    b"<font",
    b"<table",
    b"<a",
    b"<style",
    b"<title",
    b"<b",
    b"<br",
    b"<p",
    b"<!--",
)
# A tag name ends at a space or '>' (so "<abbr" is not "<a", "<pre" is not "<p").
_TAG_END = b" >\t\n\r\x0c"
_XML_DECLARATION = re.compile(rb"^<\?xml[\s?]")
_SVG_ROOT = re.compile(rb"<svg[\s>]")
_BINARY_BYTES = frozenset(range(0x00, 0x09)) | {0x0B, 0x0E, 0x0F} | frozenset(range(0x10, 0x1B))
_BINARY_BYTES |= frozenset(range(0x1C, 0x20))
_UTF8_BOM = b"\xef\xbb\xbf"


def sniff(head: bytes) -> str:
    """The content type the first bytes of an object show, or ``application/octet-stream``."""
    head = head[:SNIFF_BYTES]
    if not head:
        return DEFAULT_CONTENT_TYPE
    for offset, signature, content_type in _SIGNATURES:
        if head.startswith(signature, offset):
            return content_type
    return (
        _bmp(head)
        or _iso_media(head)
        or _riff(head)
        or _matroska(head)
        or _ogg(head)
        or _mpeg_audio(head)
        or _mpeg_ts(head)
        or _text(head)
        or DEFAULT_CONTENT_TYPE
    )


def content_type_of(pathname: str, head: bytes) -> str:
    """The pathname's extension decides; when it cannot, the first bytes do."""
    by_name = content_type_for(pathname)
    if by_name != DEFAULT_CONTENT_TYPE:
        return by_name
    return sniff(head)


def _bmp(head: bytes) -> str:
    # "BM" alone starts too much text: also the zero reserved words and a DIB header size.
    if len(head) < 18 or head[:2] != b"BM" or head[6:10] != b"\0\0\0\0":
        return ""
    dib_size = int.from_bytes(head[14:18], "little")
    return "image/bmp" if dib_size in (12, 40, 52, 56, 64, 108, 124) else ""


def _iso_media(head: bytes) -> str:
    # A box: 32-bit size, then "ftyp", the major brand, a version, compatible brands.
    if len(head) < 12 or head[4:8] != b"ftyp":
        return ""
    size = int.from_bytes(head[:4], "big")
    if size < 16 or size % 4:
        return ""
    major = head[8:12]
    if major in _FTYP_BRANDS:
        return _FTYP_BRANDS[major]
    compatible = [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    for brand in compatible:
        if brand in (b"avif", b"heic", b"mif1"):
            return _FTYP_BRANDS[brand]
    return "video/mp4"  # isom, mp41, mp42, dash, iso2..iso6, avc1, ...


def _riff(head: bytes) -> str:
    if len(head) < 12 or head[:4] != b"RIFF":
        return ""
    return _RIFF_FORMS.get(head[8:12], "")


def _matroska(head: bytes) -> str:
    # EBML header; its DocType element (0x4282) says webm or matroska.
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return ""
    at = head.find(b"\x42\x82")
    if at < 0 or at + 3 > len(head):
        return "video/x-matroska"
    length = head[at + 2] & 0x7F  # a one-byte EBML size: 0x80 | length
    doc_type = head[at + 3 : at + 3 + length]
    return "video/webm" if doc_type == b"webm" else "video/x-matroska"


def _ogg(head: bytes) -> str:
    if not head.startswith(b"OggS\x00"):
        return ""
    # The first packet starts after the 27-byte header and the segment table.
    if len(head) < 27:
        return "application/ogg"
    packet = head[27 + head[26] :]
    if packet.startswith(b"OpusHead"):
        return "audio/opus"
    if packet.startswith(b"\x01vorbis") or packet.startswith(b"\x7fFLAC"):
        return "audio/ogg"
    if packet.startswith(b"\x80theora"):
        return "video/ogg"
    return "application/ogg"


def _mpeg_audio(head: bytes) -> str:
    # An MPEG audio frame header: 11 sync bits, a valid version, layer and bitrate.
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return ""
    version, layer = (head[1] >> 3) & 0x03, (head[1] >> 1) & 0x03
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x03
    if version == 1 or bitrate in (0, 15) or rate == 3:
        return ""
    if layer == 0:
        # Layer bits 00 with the 12-bit sync is ADTS, the framing of raw AAC.
        return "audio/aac" if head[1] & 0xF6 == 0xF0 else ""
    return "audio/mpeg"


def _mpeg_ts(head: bytes) -> str:
    # Transport stream packets are 188 bytes, each starting with 0x47.
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return "video/mp2t"
    return ""


def _text(head: bytes) -> str:
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    if any(byte in _BINARY_BYTES for byte in head):
        return ""
    stripped = head.lstrip(b" \t\r\n\x0c")
    lowered = stripped.lower()
    if _XML_DECLARATION.match(lowered):
        return "image/svg+xml" if _SVG_ROOT.search(lowered) else "application/xml"
    if lowered.startswith(b"<svg") and lowered[4:5] in (b" ", b">", b"\n", b"\t", b"\r"):
        return "image/svg+xml"
    for tag in _HTML_TAGS:
        if lowered.startswith(tag) and (
            tag == b"<!--" or (len(lowered) > len(tag) and lowered[len(tag)] in _TAG_END)
        ):
            return "text/html"
    if _looks_like_json(stripped):
        return "application/json"
    if _is_utf8_prefix(head):
        return "text/plain"
    return ""


_JSON_VALUE_START = re.compile(rb'^(\{\s*("|\}|$)|\[\s*([\[{"\-0-9\]]|true|false|null|$))')


def _looks_like_json(text: bytes) -> bool:
    """An object or array opening as JSON does; the rest of the document may be cut off."""
    return bool(_JSON_VALUE_START.match(text)) and _is_utf8_prefix(text)


def _is_utf8_prefix(data: bytes) -> bool:
    """UTF-8 text, allowing a character cut off at the end of the sniffed bytes."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True
