"""The package's layering: dependencies point down only (application -> plugins -> face -> io ->
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


# What the root package's names are: ``from talkingface import X`` imports these modules.
ROOT_NAMES = {"Pipeline": "talkingface.api", "hookimpl": "talkingface.pipeline.hookspecs",
              "__version__": "talkingface._version"}


def _imports(path: Path) -> set[str]:
    """Every ``talkingface...`` module ``path`` imports, relative imports resolved (``from a
    import b`` gives ``a.b`` when ``a.b`` is a module, else ``a``; a name of the root package
    gives the module that defines it)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("talkingface")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            if not base.startswith("talkingface"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    found.add(sub)
                elif base == "talkingface":
                    found.add(ROOT_NAMES.get(alias.name, base))
                else:
                    found.add(base)
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
    "face": {"face", "io", "pipeline", "root"},  # motion extraction decodes videos
    "assets": {"pipeline"},
    "testing": {"pipeline", "root"},
    "configs": set(),
    "plugins": {"plugins", "pipeline", "root"},
    "plugins.presets": {"pipeline", "root"},
    "provenance": {"provenance", "io", "pipeline", "root"},
    "compare": {"compare", "api", "face", "io", "pipeline", "root"},
    "dataset": {"dataset", "face", "io", "pipeline", "root"},
    "api": {"pipeline", "io", "kernels", "provenance", "root"},
    "serve": {"serve", "api", "assets", "io", "pipeline", "root"},
    "cli": {"api", "assets", "compare", "dataset", "serve", "root"},
}
ALLOWED |= {f"plugins.{kind}": {f"plugins.{kind}", "pipeline", "face", "io", "kernels", "root"}
            for kind in ("audio", "motion", "render")}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) != "root"))
def test_dependencies_point_down(module):
    layer = _layer(module)
    wrong = sorted(i for i in IMPORTS[module] if _layer(i) not in ALLOWED[layer])
    assert not wrong, f"{module} ({layer}) must not import {wrong}"


def test_the_cli_imports_the_api_and_the_assets_only():
    cli_layers = {_layer(i) for i in IMPORTS["talkingface.cli"]}
    assert cli_layers <= {"api", "assets", "compare", "dataset", "serve", "root"}
    assert {i for i in IMPORTS["talkingface.cli"] if _layer(i) == "serve"} == {
        "talkingface.serve"}  # `serve` starts the live server through the package's API
    # the `compare` and `dataset` subcommands' own arguments
    assert {i for i in IMPORTS["talkingface.cli"] if _layer(i) == "compare"} == {
        "talkingface.compare.cli"}
    assert {i for i in IMPORTS["talkingface.cli"] if _layer(i) == "dataset"} == {
        "talkingface.dataset.cli"}


def test_relative_and_root_imports_are_seen(tmp_path):
    path = PACKAGE / "pipeline" / "graph.py"
    copy = tmp_path / "graph.py"
    copy.write_text("from ..api import Pipeline\nfrom talkingface import Pipeline as P\n"
                    "from .contracts import Audio\n")
    import tests.test_layers as layers

    original = layers._module_name
    layers._module_name = lambda p: original(path) if p == copy else original(p)
    try:
        assert layers._imports(copy) == {"talkingface.api", "talkingface.pipeline.contracts"}
    finally:
        layers._module_name = original


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
