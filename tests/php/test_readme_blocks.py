"""Every PHP block of the PHP READMEs, run as written against ``serve --embedded``.

The blocks are taken from ``php/README.md`` (and the PHP-client block of the
top-level README) and each run by PHP as a file of its own, in a directory
holding the files the blocks read, against a server with exactly the
configuration ``serve --embedded`` serves (its bucket ``uploads`` on the
embedded SeaweedFS, ``visibility_mode: none``), on a TCP port and a unix
socket of this run instead of the README's addresses. The only other
changes: ``$s3`` is defined before a block that says "``$s3`` as above", and
Spiral's classes are stood in by ``php/tests/Doubles/spiral-goridge.php``. A
block that is a fragment says why in an ``<!-- not-run: ... -->`` comment,
and the Laravel recipe is run by ``tests/Frameworks/LaravelRecipeTest.php``.
"""

from __future__ import annotations

import os
import re
import secrets
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.php import PHP_DIR, REPO, require_php
from tests.support.server import running_app
from trio_s3rpc.cli import EMBEDDED_LISTEN, embedded_document

pytestmark = pytest.mark.integration

README_UNIX = "unix:///run/app/rpc.sock"
BLOCK = re.compile(r"(?P<before>(?:<!--[^\n]*-->\n)?)```php\n(?P<code>.*?)```", re.DOTALL)


def php_blocks(readme: Path) -> list[tuple[str, str]]:
    """(marker comment or "", code) of every ```php block, in order."""
    text = readme.read_text()
    return [(m["before"].strip(), m["code"]) for m in BLOCK.finditer(text)]


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
async def embedded(seaweedfs: Any, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """``serve --embedded``'s configuration on this run's addresses."""
    unix = f"unix://{tmp_path}/rpc.sock"
    tcp_document = embedded_document(seaweedfs, "tcp://127.0.0.1:0")
    unix_document = embedded_document(seaweedfs, unix)
    async with running_app(tcp_document) as (_, tcp), running_app(unix_document):
        yield {"tcp": tcp, "unix": unix}


def test_the_readme_blocks_are_the_ones_this_test_knows() -> None:
    """A new block is run; a block is skipped only with its reason written beside it."""
    markers = [marker for marker, _ in php_blocks(PHP_DIR / "README.md") if marker]
    assert markers == [
        "<!-- laravel-recipe: tests/Frameworks/LaravelRecipeTest.php runs this block -->",
        "<!-- not-run: a fragment of config/filesystems.php; LaravelRecipeTest uses these keys -->",
    ]


async def test_every_php_block_of_the_readmes_runs_against_serve_embedded(
    embedded: dict[str, str], tmp_path: Path
) -> None:
    php, _ = require_php()
    work = tmp_path / "app"
    work.mkdir()
    (work / "avatar.png").write_bytes(png_bytes())
    (work / "report.pdf").write_bytes(b"%PDF-1.4\n% a report\n%%EOF\n")
    (work / "backup.tar").write_bytes(secrets.token_bytes(300_000))
    (work / "video.mp4").write_bytes(secrets.token_bytes(9 << 20))  # three ranges of 4 MiB
    (work / "big.bin").write_bytes(secrets.token_bytes(5 << 20))
    blocks = [code for marker, code in php_blocks(PHP_DIR / "README.md") if not marker]
    top = REPO / "README.md"
    section = top.read_text().split("## PHP client and Flysystem adapter", 1)[1]
    blocks += [m["code"] for m in BLOCK.finditer(section.split("\n## ", 1)[0])]
    assert len(blocks) >= 7
    env = {**os.environ, "TRIO_S3RPC_TCP": embedded["tcp"]}
    for index, code in enumerate(blocks):
        code = code.replace(EMBEDDED_LISTEN, embedded["tcp"]).replace(README_UNIX, embedded["unix"])
        script = work / f"block-{index}.php"
        script.write_text("<?php\n" + code)
        result = await trio.run_process(
            [
                php,
                "-d",
                "memory_limit=64M",
                str(PHP_DIR / "tests/scripts/readme-block.php"),
                str(script),
            ],
            cwd=work,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        errors = result.stderr.decode(errors="replace")
        if result.returncode != 0:
            tail = result.stdout[-4000:].decode(errors="replace")
            pytest.fail(f"block {index} failed:\n{code}\n{errors}\n{tail}", pytrace=False)
        assert errors == "", f"block {index} wrote to stderr:\n{code}\n{errors}"
