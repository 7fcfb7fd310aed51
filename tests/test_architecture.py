"""The package's module graph: no import cycle among the modules of include/regime (issue #20).

Every import counts, at the top of a module or inside a function (a function-level import only defers a cycle to
the first call): `import regime.x`, `from regime import x` and `from regime.x import y` (an edge to regime.x.y where
y is a submodule, else to regime.x), relative imports resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "regime"


def _modules() -> dict[str, Path]:
    """{dotted name: file} of every module of the package (a package is its __init__.py)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("regime", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """{module: the package's modules it imports anywhere in its body}."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the importing module's package, one level up per extra dot
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                # `import regime.a.b` binds regime and runs regime.a too, but the edge that matters is to regime.a.b
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None (depth-first search, modules in name order)."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return path[path.index(nxt):] + [nxt]
            if nxt not in done and (cycle := visit(nxt)):
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert len(graph) > 40
    assert "regime.indicators" in graph["regime.warehouse"]  # from regime.indicators import ... (top level)
    assert "regime.extremes.build" in graph["regime.warehouse"]  # from regime.extremes.build import (in a function)
    assert "regime.models" in graph["regime.readings"]  # from regime.models import ... (top level)
    assert "regime.extremes.state" in graph["regime.extremes.kernels"]  # from regime.extremes import state
    assert "regime.sql" in graph["regime.extremes.build"]


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in include/regime: " + " -> ".join(cycle)


MAX_LINES = 400
CODE = [PACKAGE.parents[1] / d for d in ("include", "benchmarks", "dags", "plugins")]


def test_no_long_module_without_a_reason_at_its_top():
    """A module over MAX_LINES lines says at its top why it stays whole ("It stays one file/module ...")."""
    long = {path: len(path.read_text().splitlines()) for root in CODE for path in sorted(root.rglob("*.py"))
            if len(path.read_text().splitlines()) > MAX_LINES}
    unexplained = [f"{path.relative_to(PACKAGE.parents[1])} ({lines} lines)" for path, lines in long.items()
                   if "stays one" not in (ast.get_docstring(ast.parse(path.read_text())) or "")]
    assert not unexplained, f"split these by job or say at the top why each stays whole: {unexplained}"
