"""The package's layers, read from its source: no import cycle, and no import upward.

Every ``import`` is counted, including those inside functions (lazy imports) and under
``TYPE_CHECKING``: a lazy import still makes the lower module depend on the higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gradverify

PACKAGE = Path(gradverify.__file__).parent

LAYERS = ("common", "model", "exact", "engine", "exploration", "report", "edges")
"""The subpackages from the bottom up; a module may import from its own layer and below."""

FACADE = frozenset({"gradverify", "gradverify.__main__", "gradverify._aliases"})

HYPOTHESIS_COMPAT = "gradverify.exploration.hypothesis_compat"
"""The one module allowed to touch Hypothesis's private internals."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from a import b`` gives a and a.b)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """gradverify module -> the gradverify modules it imports (submodules only, no names).

    A module's own parent packages are left out: Python imports them first anyway.
    """
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        graph[name] = {
            m for m in imports_of(path) if m in paths and m != name and not name.startswith(m + ".")
        }
    return graph


def layer_of(module: str) -> int:
    """0 for common up to len(LAYERS)-1 for edges; the façade is above all of them."""
    if module in FACADE:
        return len(LAYERS)
    return LAYERS.index(module.split(".")[1])


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} -> {b}"
        for a, deps in graph.items()
        for b in deps
        if layer_of(b) > layer_of(a) and not b == "gradverify"
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles, one path each (depth-first search, colour marking)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep == "gradverify":  # the façade's lazy names are not an import edge
                continue
            if state.get(dep) == 1:
                found.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def forbidden_third_party(path: Path) -> list[str]:
    """Imports a module below ``report``/``edges`` must not make, or internals outside compat."""
    name = module_name(path)
    layer = layer_of(name)
    bad = []
    for imported in imports_of(path):
        top = imported.split(".")[0]
        if layer < LAYERS.index("edges") and top in ("pytest", "_pytest"):
            bad.append(imported)
        if layer < LAYERS.index("report") and top == "matplotlib":
            bad.append(imported)
        if layer < LAYERS.index("edges") and imported.startswith("hypothesis.extra.pytestplugin"):
            bad.append(imported)
        if imported.startswith("hypothesis.internal") and name != HYPOTHESIS_COMPAT:
            bad.append(imported)
    return bad


def facade_imports(path: Path) -> list[str]:
    """Names a package module takes from the façade ``gradverify`` (it should name the module)."""
    subpackages = {*LAYERS, "_aliases"}
    return sorted(
        f"from gradverify import {alias.name}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "gradverify" and not node.level
        for alias in node.names
        if alias.name not in subpackages
    )


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=module_name)
def test_no_package_module_imports_from_the_facade(path):
    if module_name(path) in FACADE:
        return
    assert facade_imports(path) == []


def test_every_module_belongs_to_a_layer():
    for name in import_graph():
        assert name in FACADE or name.split(".")[1] in LAYERS, name


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports(import_graph()) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=module_name)
def test_lower_layers_import_no_edge_library(path):
    assert forbidden_third_party(path) == []


def test_the_checks_catch_what_they_are_for(tmp_path):
    # the same analysis, run on a graph with an edge import planted in the engine
    graph = import_graph()
    planted = {
        **graph,
        "gradverify.engine.check": {*graph["gradverify.engine.check"], "gradverify.edges.cli"},
    }
    assert upward_imports(planted) == ["gradverify.engine.check -> gradverify.edges.cli"]
    looped = {
        **graph,
        "gradverify.model.dtypes": {"gradverify.model.network"},
        "gradverify.model.network": {"gradverify.model.dtypes"},
    }
    assert [
        "gradverify.model.dtypes",
        "gradverify.model.network",
        "gradverify.model.dtypes",
    ] in cycles(looped)
    # and a lazy matplotlib import inside a function of a lower layer
    module = PACKAGE / "engine" / "planted_for_the_test.py"
    module.write_text("def f():\n    import matplotlib.pyplot\n")
    try:
        assert forbidden_third_party(module) == ["matplotlib.pyplot"]
    finally:
        module.unlink()
