"""The package's layering: dependencies point down only (application -> plugins -> face, io ->
pipeline -> kernels), a plugin package never reaches into another, and no module imports
itself back through a cycle. Reads the source with ``ast``; imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "talkingface"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``talkingface...`` module ``path`` imports (``from a import b`` gives ``a.b`` when
    ``a.b`` is a module, else ``a``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("talkingface")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("talkingface"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "_version":
        return "root"
    return parts[1] if parts[1] != "plugins" or len(parts) < 3 else f"plugins.{parts[2]}"


ALLOWED = {
    "kernels": {"kernels"},
    "pipeline": {"pipeline", "kernels", "root"},
    "io": {"io", "pipeline", "root"},
    "face": {"face", "pipeline", "root"},
    "assets": {"pipeline"},
    "testing": {"pipeline", "root"},
    "configs": set(),
    "plugins": {"plugins", "pipeline", "root"},
    "plugins.presets": {"pipeline", "root"},
    "compare": {"compare", "api", "face", "io", "pipeline", "root"},
    "api": {"pipeline", "io", "kernels", "root"},
    "cli": {"api", "assets", "compare", "root"},
}
ALLOWED |= {f"plugins.{kind}": {f"plugins.{kind}", "pipeline", "face", "io", "kernels", "root"}
            for kind in ("audio", "motion", "render")}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) != "root"))
def test_dependencies_point_down(module):
    layer = _layer(module)
    wrong = sorted(i for i in IMPORTS[module] if _layer(i) not in ALLOWED[layer])
    assert not wrong, f"{module} ({layer}) must not import {wrong}"


def test_the_cli_imports_the_api_and_the_assets_only():
    assert {_layer(i) for i in IMPORTS["talkingface.cli"]} <= {"api", "assets", "compare", "root"}
    assert {i for i in IMPORTS["talkingface.cli"] if _layer(i) == "compare"} == {
        "talkingface.compare.cli"}  # the `compare` subcommand's own arguments


def test_no_import_cycles():
    def visit(module, path):
        for dep in sorted(IMPORTS.get(module, ())):
            if dep in path:
                cycle = path[path.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in done:
                visit(dep, [*path, dep])
        done.add(module)

    done: set[str] = set()
    for module in sorted(MODULES):
        if module not in done:
            visit(module, [module])
