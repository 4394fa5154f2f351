"""The RGW launcher where Ceph is missing: the tests skip, saying how to install it, and
fail instead under CI=true; the launcher itself names what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.rgw import REQUIRED_COMMANDS, RadosGateway, missing_commands, require_rgw


@pytest.fixture
def without_ceph(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no ceph-* here


def test_missing_ceph_skips_and_says_how_to_install_it(
    without_ceph: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert missing_commands() == list(REQUIRED_COMMANDS)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_rgw()
    assert "ceph-mon" in str(skipped.value)
    assert ".ci/install-rgw" in str(skipped.value)


def test_missing_ceph_fails_under_ci(without_ceph: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_rgw()
    assert "CI=true" in str(failed.value)


def test_the_launcher_names_what_is_missing(without_ceph: None, tmp_path: Path) -> None:
    gateway = RadosGateway(tmp_path / "cluster")
    with pytest.raises(RuntimeError, match="radosgw-admin"):
        gateway.start()
    assert gateway.pids == {}
