"""Running the PHP suites of ``php/`` from pytest.

PHP is not a Python dependency: ``.ci/install-php`` installs it from Debian
(php-cli, phpunit 9.6, the sources of Flysystem 3.29.1 and Laravel 10.48 from trixie). Where PHP is
absent the PHP tests skip, saying so; under ``CI=true`` they fail instead, so
CI can never pass without running them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PHP_DIR = REPO / "php"
FLYSYSTEM_SOURCE = PHP_DIR / ".deps" / "flysystem"
LARAVEL_SOURCE = PHP_DIR / ".deps" / "laravel"


def require_php() -> tuple[str, str]:
    """The php and phpunit executables; skip (or fail under CI) when either is missing."""
    php, phpunit = shutil.which("php"), shutil.which("phpunit")
    missing = [name for name, path in (("php", php), ("phpunit", phpunit)) if path is None]
    for name, source in (("Flysystem", FLYSYSTEM_SOURCE), ("Laravel", LARAVEL_SOURCE)):
        if not (source / "src").is_dir():
            missing.append(f"{name}'s source in {source.relative_to(REPO)}")
    if missing:
        reason = (
            f"PHP is absent ({', '.join(missing)} not found); run .ci/install-php to install it"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    assert php is not None and phpunit is not None
    return php, phpunit
