"""Every PHP block of both READMEs, run as written against ``serve --embedded``.

The blocks are taken from the top-level ``README.md`` and ``php/README.md``, in
that order and in the order they are written, and each run by PHP as a file of
its own, in a directory holding the files the blocks read, against a server
with exactly the configuration ``serve --embedded`` serves (its bucket
``uploads`` on the embedded SeaweedFS, ``visibility_mode: none``), on a TCP
port and a unix socket of this run instead of the README's addresses, with
``sys_get_temp_dir()`` a directory of this run (under the server's default
``s3.local_roots``). The only other changes: ``$s3`` and ``$rpc`` are defined
before a block that says "as above", and Spiral's classes are stood in by
``php/tests/Doubles/spiral-goridge.php``.

Every block of ``README.md`` is followed by a ```` ```text ```` block, what
it prints, and the block's output must be exactly that (``…`` within a line
stands for any text there, a line of only ``…`` for any lines): so a block
fails when a call fails (an uncaught exception) and when it answers other
than the README says. A block that cannot run here says why in an
``<!-- not-run: ... -->`` comment, and the Laravel recipe is run by
``tests/Frameworks/LaravelRecipeTest.php``.
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
from tests.support.proxy import TCPProxy
from tests.support.server import running_app
from trio_s3rpc.checksums import crc32c, format_checksum
from trio_s3rpc.cli import EMBEDDED_LISTEN, embedded_document

pytestmark = pytest.mark.integration

README_UNIX = "unix:///run/app/rpc.sock"
RUNNER = "tests/scripts/readme-block.php"
BLOCK_TIMEOUT = 120  # seconds; a block takes about one on the shared 2-core machine
BLOCK = re.compile(
    r"(?P<before>(?:<!--[^\n]*-->\n)?)```php\n(?P<code>.*?)```\n"
    r"(?:\n```text\n(?P<output>.*?)```\n)?",
    re.DOTALL,
)


def php_blocks(readme: Path) -> list[tuple[str, str, str | None]]:
    """(marker comment or "", code, the ```text block after it or None) of every
    ```php block, in order."""
    text = readme.read_text()
    return [(m["before"].strip(), m["code"], m["output"]) for m in BLOCK.finditer(text)]


def output_pattern(expected: str) -> re.Pattern[str]:
    """``expected`` as a pattern: ``…`` is any text within a line, a line ``…`` any lines."""
    parts = []
    for line in expected.splitlines(keepends=True):
        if line.rstrip("\n") == "…":
            parts.append(r"(?:[^\n]*\n)*")
        else:
            parts.append("[^\n]*".join(re.escape(piece) for piece in line.split("…")))
    return re.compile("".join(parts))


def test_output_pattern() -> None:
    pattern = output_pattern("…\n9437184 bytes, …\n")
    assert pattern.fullmatch("9437184 bytes, completed\n")
    assert pattern.fullmatch(" 42.0%\n100.0%\n9437184 bytes, completed\n")
    assert not pattern.fullmatch("9437184 bytes, completed\nanother line\n")
    assert not pattern.fullmatch("9437185 bytes, completed\n")
    assert not output_pattern("a.b\n").fullmatch("axb\n")


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
    """A new block is run; a block is skipped only with its reason written beside it,
    and every block of README.md says what it prints."""
    top = php_blocks(REPO / "README.md")
    assert len(top) >= 11
    assert [marker for marker, _, _ in top if marker] == []
    assert [code for _, code, output in top if output is None] == []
    markers = [marker for marker, _, _ in php_blocks(PHP_DIR / "README.md") if marker]
    assert markers == [
        "<!-- laravel-recipe: tests/Frameworks/LaravelRecipeTest.php runs this block -->",
        "<!-- not-run: a fragment of config/filesystems.php; LaravelRecipeTest uses these keys -->",
    ]


def app_directory(tmp_path: Path) -> Path:
    """The directory the blocks run in, holding the files they read."""
    work = tmp_path / "app"
    work.mkdir()
    (work / "avatar.png").write_bytes(png_bytes())
    (work / "report.pdf").write_bytes(b"%PDF-1.4\n% a report\n%%EOF\n")
    (work / "backup.tar").write_bytes(secrets.token_bytes(300_000))
    (work / "video.mp4").write_bytes(secrets.token_bytes(9 << 20))  # three ranges of 4 MiB
    (work / "big.bin").write_bytes(secrets.token_bytes(5 << 20))
    (work / "db.tar.gz").write_bytes(secrets.token_bytes(6 << 20))  # two parts of 5 MiB
    rows = (b"%010d,user\n" % i for i in range(786432))  # 12 MiB: two chunks of 8 MiB
    (work / "export.csv").write_bytes(b"".join(rows))
    (tmp_path / "tmp").mkdir()
    return work


async def run_block(
    php: str, label: str, code: str, output: str | None, work: Path, tcp: str, unix: str
) -> str:
    """Run one block as the README has it, with this run's addresses; fail unless it
    exits 0, writes nothing to stderr and prints what ``output`` says. Its stdout."""
    code = here(code, tcp, unix)
    script = work / f"{label}.php"
    script.write_text("<?php\n" + code)
    # sys_get_temp_dir(): a directory of this run, under the server's s3.local_roots.
    env = {**os.environ, "TRIO_S3RPC_TCP": tcp, "TMPDIR": str(work.parent / "tmp")}
    # A block that loops for ever (a retry that never succeeds) fails instead of hanging.
    with trio.fail_after(BLOCK_TIMEOUT):
        result = await trio.run_process(
            [php, "-d", "memory_limit=64M", str(PHP_DIR / RUNNER), script],
            cwd=work,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    errors = result.stderr.decode(errors="replace")
    printed = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        tail = printed[-4000:]
        pytest.fail(f"{label} failed:\n{code}\n{errors}\n{tail}", pytrace=False)
    if errors:
        pytest.fail(f"{label} wrote to stderr:\n{code}\n{errors}", pytrace=False)
    if output is not None:
        expected = here(output, tcp, unix)
        if not output_pattern(expected).fullmatch(printed):
            said = f"printed\n{printed}\nwhere the README says\n{expected}"
            pytest.fail(f"{label} {said}\n{code}", pytrace=False)
    return printed


def here(text: str, tcp: str, unix: str) -> str:
    """``text`` with the README's addresses replaced by this run's."""
    return text.replace(EMBEDDED_LISTEN, tcp).replace(README_UNIX, unix)


async def test_every_php_block_of_the_readmes_runs_against_serve_embedded(
    embedded: dict[str, str], tmp_path: Path
) -> None:
    php, _ = require_php()
    work = app_directory(tmp_path)
    blocks = [
        (code, output)
        for readme in (REPO / "README.md", PHP_DIR / "README.md")
        for marker, code, output in php_blocks(readme)
        if not marker
    ]
    assert len(blocks) >= 17
    for index, (code, output) in enumerate(blocks):
        await run_block(
            php, f"block-{index}", code, output, work, embedded["tcp"], embedded["unix"]
        )


async def test_the_readmes_resumable_upload_goes_on_after_a_broken_connection(
    embedded: dict[str, str], tmp_path: Path
) -> None:
    """The README's loop of UploadChunk with ``catch (RelayException $e)``, run as
    written through a proxy that breaks its first connection in the middle of the
    second chunk: the loop reconnects, resumes from UploadStatus and stores the
    file's own bytes."""
    php, _ = require_php()
    work = app_directory(tmp_path)
    [(code, output)] = [
        (code, output)
        for _, code, output in php_blocks(REPO / "README.md")
        if "catch (RelayException $e)" in code
    ]
    host, port = embedded["tcp"].removeprefix("tcp://").rsplit(":", 1)
    async with trio.open_nursery() as nursery:
        proxy = TCPProxy(host, int(port))
        proxy.cut_after_bytes = 14 << 20  # the first 8 MiB chunk passes, the second does not
        proxy.cuts_left = 1
        address = f"tcp://127.0.0.1:{await proxy.start(nursery)}"
        printed = await run_block(php, "resumable", code, output, work, address, embedded["unix"])
        nursery.cancel_scope.cancel()
    assert proxy.cuts_left == 0, "the connection was never broken"
    checksum = format_checksum(crc32c((work / "export.csv").read_bytes()))
    assert printed == f"12582912 bytes, {checksum}\n"
