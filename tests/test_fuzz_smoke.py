"""Each fuzz target runs for a few seconds and finds nothing; long runs are in fuzz/README.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"


@pytest.mark.parametrize("target", ["fuzz_frame.py", "fuzz_codecs.py", "fuzz_methods.py"])
def test_fuzz_target_runs_clean(target: str, tmp_path: Path) -> None:
    # tmp_path as the working directory keeps any crash-*.bin out of the tree.
    result = subprocess.run(
        [sys.executable, str(FUZZ / target), "--seconds", "3", "--examples", "200"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no failures" in result.stdout
    assert not list(tmp_path.glob("crash-*.bin"))


def test_harness_catches_and_saves_an_unexpected_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(FUZZ))
    monkeypatch.chdir(tmp_path)
    import harness

    def buggy(data: bytes) -> None:
        if len(data) > 3:
            raise ValueError("crash")
        raise KeyError("expected rejection")

    target = harness.Target("buggy", buggy, expected=(KeyError,), seeds=[b"ab"])
    assert harness.main(target, ["--seconds", "5", "--examples", "50"]) == 1
    (crash,) = tmp_path.glob("crash-*.bin")
    assert len(crash.read_bytes()) == 4  # hypothesis shrank it to the smallest failing size
    assert "ValueError: crash" in capsys.readouterr().err
    assert harness.main(target, [str(crash)]) == 1
    (tmp_path / "fine.bin").write_bytes(b"ab")
    assert harness.main(target, [str(tmp_path / "fine.bin")]) == 0
