"""The package's import graph: no cycles, and the lower layers never reach up.

Every ``import`` and ``from ... import`` in ``dsod_depth`` counts, at module level or inside a function,
as do ``importlib.import_module("...")`` calls with a literal name and the lazy export tables of
package ``__init__`` files (``lazy_exports(__name__, {...}, ...)``): a name imported from a package
whose ``__init__`` exports it lazily is an edge to the module that defines it. An import of
``a.b.c`` is an edge to ``a.b.c`` alone (the packages above it only run their ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dsod_depth"
ROOT = "dsod_depth"
# Layers that must not import these (DESIGN.md, "Architecture"): pure code below the engine.
LOWER = ("data", "models", "encoders", "geometry", "detection", "evaluation")
FORBIDDEN = ("dsod_depth.cli", "dsod_depth.experiments", "dsod_depth.demo", "dsod_depth.engine", "argparse")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _lazy_table(tree: ast.Module) -> dict[str, str]:
    """{exported name: module} of a package ``__init__`` that calls ``lazy_exports``."""
    dicts = {
        t.id: node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "lazy_exports"
            and len(node.args) > 1
        ):
            table = node.args[1]
            table = dicts.get(table.id) if isinstance(table, ast.Name) else table
            if isinstance(table, ast.Dict):
                return {k.value: v.value for k, v in zip(table.keys, table.values)
                        if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}  # fmt: skip
    return {}


def _is_import_module(node: ast.AST) -> bool:
    """A call ``importlib.import_module(...)`` (or ``import_module(...)``) with an argument."""
    if not isinstance(node, ast.Call) or not node.args:
        return False
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def _resolve(module: str, level: int, current: str, is_package: bool) -> str:
    if not level:
        return module
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_graph() -> dict[str, set[str]]:
    """{module: the modules (of this package, plus ``argparse``) it imports}."""
    modules = _modules()
    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in modules.items()}
    lazy = {name: _lazy_table(tree) for name, tree in trees.items() if modules[name].name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        edges: set[str] = set()
        is_package = modules[name].name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(node.module or "", node.level, name, is_package)
                for alias in node.names:
                    child = f"{target}.{alias.name}"
                    if child in modules:
                        edges.add(child)
                    elif alias.name in lazy.get(target, {}):
                        edges.add(lazy[target][alias.name])
                    else:
                        edges.add(target)
            elif _is_import_module(node) and isinstance(node.args[0], ast.Constant):
                edges.add(str(node.args[0].value))
        graph[name] = {e for e in edges if (e in modules or e == "argparse") and e != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules (~150)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    graph = import_graph()
    # Known edges of each kind: module level, inside a function, through a lazy table.
    assert "dsod_depth.data.store" in graph["dsod_depth.data.loader"]
    assert "dsod_depth.encoders.base" in graph["dsod_depth.data.loader"] or any(
        e.startswith("dsod_depth.encoders") for e in graph["dsod_depth.data.loader"]
    )
    init = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    assert _lazy_table(init) == {"Detector": "dsod_depth.inference.detector"}


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_do_not_reach_up(layer):
    graph = import_graph()
    bad = sorted(
        f"{module} → {target}"
        for module, targets in graph.items()
        if module == f"{ROOT}.{layer}" or module.startswith(f"{ROOT}.{layer}.")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in FORBIDDEN)
    )
    assert not bad, f"{layer}/ imports a layer above it: " + ", ".join(bad)


def test_no_import_by_computed_name():
    """``import_module(f"...{name}")`` hides an edge from this test (and from readers): only the lazy
    export mechanism and the import of an optional third-party package may compute module names."""
    allowed = {
        "dsod_depth.lazy": "lazy exports",
        "dsod_depth.inference.export": "onnx/onnxruntime (_require)",
    }
    found = []
    for name, path in _modules().items():
        if name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if _is_import_module(node) and not isinstance(node.args[0], ast.Constant):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, "imports by computed name: " + ", ".join(found)


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
