"""The README's Architecture section is the map of the package, and the code keeps to its layers.

A call goes down goridge → s3 → storage → rpc → cluster → app; a module
imports from its own layer, from the layers below it and from the shared leaf
modules, never from a layer above. The imports are read with ``ast``, not by
importing, so a test of the test can run the same check on a synthetic tree.

Which imports count: every ``import`` and ``from ... import`` in the module,
wherever it is written. An import inside a function (``cli.py`` imports the
application lazily) is still a dependency, and so is one under
``if TYPE_CHECKING:``: a type named in a signature ties the module to the
layer that defines it as much as a call does. Relative imports are resolved
against the importing module's package; ``from pkg import name`` counts as an
import of ``pkg.name`` when that is a module, else of ``pkg``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_s3rpc"

# Lowest first. Each layer lists the modules or packages (relative to the
# package, matched as a dotted prefix) that belong to it. ``config`` sits
# between s3 and storage: storage and everything above read the model, and
# ``s3/`` is handed what it needs instead of knowing the configuration.
# ``metrics`` and ``status`` serve the RPC server's process and read storage
# (``/ready`` probes every bucket), so they live with ``rpc``. The top layer
# holds the wiring and the entry points.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("goridge", ("goridge",)),
    ("s3", ("s3",)),
    ("config", ("config",)),
    ("storage", ("storage",)),
    ("rpc", ("rpc", "metrics", "status")),
    ("cluster", ("cluster",)),
    ("app", ("app", "cli", "__main__", "client", "embedded")),
)

# Shared leaf modules: any layer may import them, and they import only each
# other (``budget`` raises the contract's RESOURCE_EXHAUSTED from ``errors``).
# ``""`` is the package's ``__init__`` (``__version__``). ``nbio`` is the
# non-blocking socket I/O helper of the server, the relay and the HTTP client;
# ``poller`` reads many sockets from one task (the server's connections).
LEAVES: tuple[str, ...] = (
    "",
    "errors",
    "logs",
    "checksums",
    "budget",
    "progress",
    "callers",
    "mime",
    "sniff",
    "trioutil",
    "nbio",
    "poller",
)

# Narrower than the layer order: goridge is sans-IO and imports nothing else
# of the package; the method layer speaks storage's records, not S3's.
FORBIDDEN_BELOW: dict[str, frozenset[str]] = {
    "goridge": frozenset({"leaf"}),
    "rpc": frozenset({"s3"}),
}

# Imports against the layers that are being fixed in parallel (issue 25). The
# list only shrinks: a test fails when an entry no longer occurs, so a fix
# deletes its entry here. (importing module, imported module or package).
KNOWN_VIOLATIONS: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    line: int


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package under ``package_dir``, by dotted name."""
    names: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """The package-internal imports of module ``name``, wherever in the file they are."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = name.split(".")[0]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == top or alias.name.startswith(top + "."):
                    found.append(Import(name, alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != top and not base.startswith(top + "."):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(Import(name, candidate if candidate in known else base, node.lineno))
    return found


def layer_of(name: str) -> str | None:
    """The layer of a dotted module name (``"leaf"`` for a shared leaf), or None."""
    parts = name.split(".")[1:]
    dotted = ".".join(parts)
    if dotted in LEAVES:
        return "leaf"
    for layer, members in LAYERS:
        for member in members:
            if dotted == member or dotted.startswith(member + "."):
                return layer
    return None


def rank(layer: str) -> int:
    return [name for name, _ in LAYERS].index(layer)


def allowed(importer_layer: str, imported_layer: str) -> bool:
    if imported_layer in FORBIDDEN_BELOW.get(importer_layer, frozenset()):
        return False
    if imported_layer == "leaf":
        return True
    if importer_layer == "leaf":
        return False
    return rank(imported_layer) <= rank(importer_layer)


def all_imports(package_dir: Path) -> list[Import]:
    names = module_names(package_dir)
    known = set(names)
    return [found for name, path in names.items() for found in imports_of(name, path, known)]


def layer_problems(package_dir: Path) -> list[tuple[Import, str]]:
    """Each import against the layers, with the sentence that says why."""
    problems: list[tuple[Import, str]] = []
    for name in module_names(package_dir):
        if layer_of(name) is None:
            problems.append(
                (Import(name, "", 0), f"{name} has no layer: add it to LAYERS or LEAVES")
            )
    for found in all_imports(package_dir):
        importer_layer = layer_of(found.importer)
        imported_layer = layer_of(found.imported)
        if importer_layer is None or imported_layer is None:
            continue  # an unknown importer is reported above; an unknown target is a typo
        if not allowed(importer_layer, imported_layer):
            problems.append(
                (
                    found,
                    f"{found.importer} (layer {importer_layer}) imports {found.imported} "
                    f"(layer {imported_layer}) at line {found.line}",
                )
            )
    return problems


def is_known(found: Import) -> bool:
    return any(
        found.importer == importer
        and (found.imported == imported or found.imported.startswith(imported + "."))
        for importer, imported in KNOWN_VIOLATIONS
    )


def test_no_import_goes_against_the_layers() -> None:
    problems = [why for found, why in layer_problems(PACKAGE) if not is_known(found)]
    assert problems == [], "imports against the layers:\n" + "\n".join(problems)


def test_each_known_violation_still_occurs() -> None:
    against = [found for found, _ in layer_problems(PACKAGE)]
    stale = [
        f"{importer} no longer imports {imported}: delete it from KNOWN_VIOLATIONS"
        for importer, imported in KNOWN_VIOLATIONS
        if not any(
            found.importer == importer
            and (found.imported == imported or found.imported.startswith(imported + "."))
            for found in against
        )
    ]
    assert stale == []


def write_tree(root: Path, files: dict[str, str]) -> Path:
    package_dir = root / "trio_s3rpc"
    for relative, text in files.items():
        path = package_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package_dir


def test_an_import_against_the_layers_is_reported_with_both_modules_and_layers(
    tmp_path: Path,
) -> None:
    package_dir = write_tree(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "s3/__init__.py": "",
            "s3/signing.py": (
                "from __future__ import annotations\n"
                "from typing import TYPE_CHECKING\n"
                "from trio_s3rpc import errors\n"
                "if TYPE_CHECKING:\n"
                "    from trio_s3rpc.storage.buckets import Storage\n"
            ),
            "s3/xml.py": "def parse() -> None:\n    from ..rpc import methods\n",
            "storage/__init__.py": "",
            "storage/buckets.py": "from trio_s3rpc.s3 import signing\n",
            "rpc/__init__.py": "",
            "rpc/methods.py": "from . import typed\nimport trio_s3rpc.s3.xml\n",
            "rpc/typed.py": "",
            "goridge/__init__.py": "",
            "goridge/frame.py": "from trio_s3rpc.errors import RPCError\n",
            "errors2.py": "",
        },
    )
    problems = sorted(why for _, why in layer_problems(package_dir))
    assert problems == [
        "trio_s3rpc.errors2 has no layer: add it to LAYERS or LEAVES",
        "trio_s3rpc.goridge.frame (layer goridge) imports trio_s3rpc.errors (layer leaf) at line 1",
        "trio_s3rpc.rpc.methods (layer rpc) imports trio_s3rpc.s3.xml (layer s3) at line 2",
        "trio_s3rpc.s3.signing (layer s3) imports trio_s3rpc.storage.buckets "
        "(layer storage) at line 5",
        "trio_s3rpc.s3.xml (layer s3) imports trio_s3rpc.rpc.methods (layer rpc) at line 2",
    ]


def test_a_tree_that_keeps_to_the_layers_has_no_problems(tmp_path: Path) -> None:
    package_dir = write_tree(
        tmp_path,
        {
            "__init__.py": "__version__ = '1'\n",
            "errors.py": "",
            "budget.py": "from .errors import RPCError\n",
            "s3/__init__.py": "",
            "s3/multipart.py": "from trio_s3rpc import budget, __version__\n",
            "storage/__init__.py": "from .buckets import Storage\n",
            "storage/buckets.py": "from trio_s3rpc.s3 import multipart\n",
            "app.py": "def main() -> None:\n    from trio_s3rpc.storage import buckets\n",
        },
    )
    assert layer_problems(package_dir) == []


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


# S3's limits are written once, in s3/limits.py; nothing else assigns these names.
S3_LIMIT_NAMES = frozenset(
    {
        "MIN_PART_SIZE",
        "MAX_PART_SIZE",
        "MAX_PARTS",
        "MAX_OBJECT_SIZE",
        "MAX_COPY_SIZE",
        "MAX_KEY_BYTES",
        "MAX_METADATA_BYTES",
        "MAX_DELETE_KEYS",
        "MAX_LIST_KEYS",
    }
)


def limit_assignments(package_dir: Path) -> list[str]:
    """``module: NAME`` for each module-level assignment of an S3 limit outside s3/limits.py."""
    found = []
    for name, path in module_names(package_dir).items():
        if name.endswith(".s3.limits"):
            continue
        for node in ast.parse(path.read_text()).body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if isinstance(target, ast.Name) and target.id in S3_LIMIT_NAMES:
                    found.append(f"{name}: {target.id}")
    return found


def test_s3_limits_are_written_once() -> None:
    assert limit_assignments(PACKAGE) == []


def test_a_second_copy_of_a_limit_is_found(tmp_path: Path) -> None:
    package = tmp_path / "trio_s3rpc"
    (package / "s3").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "s3" / "__init__.py").write_text("")
    (package / "s3" / "limits.py").write_text("MAX_PARTS = 10_000\n")
    (package / "s3" / "parts.py").write_text("MAX_PARTS: int = 10_000\n")
    assert limit_assignments(package) == ["trio_s3rpc.s3.parts: MAX_PARTS"]
