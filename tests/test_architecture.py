"""The package's layers, as docs/ARCHITECTURE.md draws them: each subpackage imports only the
layers below it (function-level imports included), and no two modules import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "host" / "dhims2"

# Subpackage -> the subpackages it may import. `errors` and the package root (its version) are
# the foundation every layer may use.
ALLOWED: dict[str, set[str]] = {
    "dhis2": set(),
    "forms": {"dhis2"},
    "sheets": {"forms", "dhis2"},
    "queue": {"forms", "dhis2"},
    "workspace": {"queue", "forms", "dhis2"},
    "browser": {"workspace", "queue", "sheets", "forms", "dhis2"},
    "setup": {"browser", "workspace", "dhis2"},
    "sandbox": {"forms", "dhis2"},
    "cli": {"sandbox", "workspace", "queue", "sheets", "forms", "dhis2"},
}
FOUNDATION = {"errors", ""}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every dhims2 module `path` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dhims2"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / submodule.replace(".", "/")).with_suffix(".py")
                found.add(submodule if is_module.exists() else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("dhims2"))
    return found


MODULES = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_subpackage_is_a_known_layer() -> None:
    layers = {_layer(name) for name in MODULES} - FOUNDATION
    assert layers == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_those_below(module: str) -> None:
    layer = _layer(module)
    allowed = ALLOWED.get(layer, set()) | FOUNDATION | {layer}
    wrong = sorted(name for name in MODULES[module] if _layer(name) not in allowed)
    assert not wrong, f"{module} ({layer}) reaches up into {wrong}"


def test_no_two_modules_import_each_other() -> None:
    circles = sorted(
        (a, b)
        for a, imported in MODULES.items()
        for b in imported
        if a < b and a in MODULES.get(b, ())
    )
    assert not circles
