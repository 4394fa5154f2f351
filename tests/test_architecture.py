"""The README's Architecture section is the map of the package: it names every module."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_s3rpc"


def architecture_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Architecture\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else len(readme)]


def test_the_architecture_section_names_every_package_and_module() -> None:
    section = architecture_section()
    modules = sorted(
        path.relative_to(PACKAGE)
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )
    assert modules, "no modules found"
    missing = [str(module) for module in modules if module.name not in section]
    packages = {module.parent for module in modules if module.parent != Path(".")}
    missing += [f"{package}/" for package in packages if f"{package}/" not in section]
    assert missing == [], f"README Architecture does not name: {', '.join(sorted(missing))}"
