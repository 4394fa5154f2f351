"""The codebase stays ruff- and mypy-clean: CI fails on the first new warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_clean() -> None:
    result = run("ruff", "check", "trio_s3rpc", "tests", "fuzz", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_clean() -> None:
    result = run("mypy", "--strict", "trio_s3rpc")
    assert result.returncode == 0, result.stdout + result.stderr
