"""``php -l`` over every PHP file of the package: its sources and its tests.

PHPStan is not packaged by Debian (see php/README.md, "Tests"), so this is the
static check every file gets in CI: PHP's own parser, as the PHP version
installed runs it, refusing a file it cannot compile. The public API's shape
(``@throws``, typed arrays) is checked by ``php/tests/Unit/LibraryShapeTest.php``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.php import PHP_DIR, require_php


def lint_errors(php: str, files: list[Path]) -> list[str]:
    """What ``php -l`` says of each file it refuses (PHP 8.2 lints one file per run)."""
    errors = []
    for path in files:
        result = subprocess.run(
            [php, "-n", "-l", str(path)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            errors.append(f"{path}: {(result.stdout + result.stderr).strip()}")
    return errors


def package_files() -> list[Path]:
    return sorted((PHP_DIR / "src").rglob("*.php")) + sorted((PHP_DIR / "tests").rglob("*.php"))


def test_every_php_file_of_the_package_parses() -> None:
    php, _ = require_php()
    files = package_files()
    assert len([path for path in files if (PHP_DIR / "src") in path.parents]) >= 40
    assert lint_errors(php, files) == []


def test_the_lint_refuses_a_file_php_cannot_parse(tmp_path: Path) -> None:
    php, _ = require_php()
    broken = tmp_path / "Broken.php"
    broken.write_text("<?php\nfinal class Broken { public function f(): void { return [ } }\n")
    fine = tmp_path / "Fine.php"
    fine.write_text("<?php\nfinal class Fine {}\n")
    errors = lint_errors(php, [broken, fine])
    assert len(errors) == 1
    assert errors[0].startswith(f"{broken}: ") and "Parse error" in errors[0]
