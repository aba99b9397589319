"""The package's layers: imports only point down, no import cycles, no unexplained long functions.

    shared leaves (source, diagnostics, operators, plan, expr, codes, atomic, resources, environment, allocator,
                   render, registry)
      → syntax → semantic → importers → data → report → backend → serve → commands, lsp → cli

Imports are read with the ast module from every module of the package: top-level, function-level
(lazy) and `if TYPE_CHECKING:` ones alike, since each is a dependency of the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ftlang"

#: bottom to top; a module may import its own layer and the layers below it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("leaves", ("ftlang", "ftlang.source", "ftlang.diagnostics", "ftlang.operators", "ftlang.plan", "ftlang.expr",
                "ftlang.codes", "ftlang.atomic", "ftlang.resources", "ftlang.environment", "ftlang.allocator", "ftlang.render",
                "ftlang.registry")),
    ("syntax", ("ftlang.syntax",)),
    ("semantic", ("ftlang.semantic",)),
    # `ftlang import`: foreign configs as recipes, laid out by the formatter, keys read from the schema
    ("importers", ("ftlang.importers",)),
    ("data", ("ftlang.data",)),
    # the report renders a run's facts (report.json) and compares two runs: the eval stage writes it
    ("report", ("ftlang.report",)),
    ("backend", ("ftlang.backend",)),
    ("serve", ("ftlang.serve",)),
    ("commands", ("ftlang.commands", "ftlang.lsp")),
    ("cli", ("ftlang.cli", "ftlang.__main__")),
]
MAX_LINES = 80
#: a longer function says why on one of its first lines
LONG_MARK = "# long:"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The package modules an import statement loads (`from pkg import mod` counts as pkg.mod)."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            up = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(up + ([node.module] if node.module else []))
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = []
    for t in targets:
        while t not in MODULES and "." in t:
            t = t.rpartition(".")[0]
        if t in MODULES and t != name:
            out.append(t)
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {t for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                       for t in _resolve(name, path, n)}
    return graph


def layer_of(module: str) -> int:
    best, found = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            # "ftlang" itself names only the package's __init__; the others cover their subpackages
            if module == p or (p != "ftlang" and module.startswith(p + ".")):
                if len(p) > best:
                    best, found = len(p), i
    assert found is not None, f"{module} has no layer: add it to LAYERS in tests/test_layering.py"
    return found


def test_the_graph_sees_the_package() -> None:
    graph = _graph()
    assert len(graph) > 80 and "ftlang.plan" in graph["ftlang.backend.run"]
    # a function-level import is seen too
    assert "ftlang.data.prepare" in graph["ftlang.backend.run"]


def test_imports_only_point_down() -> None:
    upward = []
    for name, deps in sorted(_graph().items()):
        for dep in sorted(deps):
            if layer_of(dep) > layer_of(name):
                upward.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (move the shared part into a module both import):\n" + "\n".join(
        " ⇄ ".join(c) for c in cycles)


def test_no_function_over_80_lines_without_a_reason() -> None:
    long = []
    for path in sorted(MODULES.values()):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                head = lines[node.lineno - 1: node.lineno + 5]
                if size > MAX_LINES and not any(LONG_MARK in line for line in head):
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({size} lines)")
    assert not long, (f"functions over {MAX_LINES} lines; split them, or say why on one of their first lines "
                      f"with `{LONG_MARK} ...`:\n" + "\n".join(long))
