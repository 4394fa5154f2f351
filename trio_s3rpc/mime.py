"""Content types from pathname extensions.

Python's built-in table (not the host's ``/etc/mime.types``, so the answer
is the same on every machine) extended with the formats web applications
upload today that the built-in table lacks.
"""

from __future__ import annotations

import mimetypes

DEFAULT_CONTENT_TYPE = "application/octet-stream"

_EXTRA_TYPES = {
    ".7z": "application/x-7z-compressed",
    ".apk": "application/vnd.android.package-archive",
    ".avif": "image/avif",
    ".br": "application/x-brotli",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".dotx": "application/vnd.openxmlformats-officedocument.wordprocessingml.template",
    ".epub": "application/epub+zip",
    ".flac": "audio/flac",
    ".gz": "application/gzip",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".ics": "text/calendar",
    ".jsonld": "application/ld+json",
    ".jxl": "image/jxl",
    ".m4a": "audio/mp4",
    ".m4v": "video/mp4",
    ".md": "text/markdown",
    ".mjs": "text/javascript",
    ".mkv": "video/x-matroska",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".ogv": "video/ogg",
    ".opus": "audio/opus",
    ".otf": "font/otf",
    ".parquet": "application/vnd.apache.parquet",
    ".potx": "application/vnd.openxmlformats-officedocument.presentationml.template",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".rar": "application/vnd.rar",
    ".rtf": "application/rtf",
    ".toml": "application/toml",
    ".ttf": "font/ttf",
    ".wasm": "application/wasm",
    ".weba": "audio/webm",
    ".webm": "video/webm",
    ".webmanifest": "application/manifest+json",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xltx": "application/vnd.openxmlformats-officedocument.spreadsheetml.template",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".zst": "application/zstd",
}


def _build_table() -> dict[str, str]:
    table = dict(mimetypes.MimeTypes().types_map[True])
    table.update(_EXTRA_TYPES)
    return table


_TABLE = _build_table()


def content_type_for(pathname: str) -> str:
    """The content type for a pathname's extension (case-insensitive)."""
    name = pathname.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    if dot <= 0:
        return DEFAULT_CONTENT_TYPE
    return _TABLE.get(name[dot:].lower(), DEFAULT_CONTENT_TYPE)
