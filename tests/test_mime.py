"""Content types from pathnames, the same on every machine (no network)."""

from __future__ import annotations

import pytest

from trio_s3rpc.mime import DEFAULT_CONTENT_TYPE, content_type_for


@pytest.mark.parametrize(
    ("pathname", "expected"),
    [
        ("a.txt", "text/plain"),
        ("img/photo.JPG", "image/jpeg"),
        ("dir.v2/archive.tar.gz", "application/gzip"),
        ("pics/a.webp", "image/webp"),  # not in Python's own table
        ("data.parquet", "application/vnd.apache.parquet"),
        ("config.yml", "application/yaml"),
    ],
)
def test_known_extensions(pathname: str, expected: str) -> None:
    assert content_type_for(pathname) == expected


@pytest.mark.parametrize(
    "pathname", ["README", ".bashrc", "dir.d/noext", "a.unknown-ext", "trailing.", ""]
)
def test_anything_else_is_octet_stream(pathname: str) -> None:
    assert content_type_for(pathname) == DEFAULT_CONTENT_TYPE
