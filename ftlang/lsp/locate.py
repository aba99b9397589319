"""What sits under the cursor: the chain of AST nodes around an offset, and the schema block they are in."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from ftlang.lsp.positions import contains
from ftlang.syntax import ast

Chain = tuple[ast.Node, ...]  # outermost first


def children(node: object) -> Iterator[ast.Node]:
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, ast.Node) and not isinstance(item, ast.Comment):
                yield item


def walk(node: ast.Node, parents: Chain = ()) -> Iterator[tuple[ast.Node, Chain]]:
    """Every node below `node` (itself first) with the chain of its ancestors; iterative (deep files)."""
    stack = [(node, parents)]
    while stack:
        cur, up = stack.pop()
        yield cur, up
        below = (*up, cur)
        stack.extend((c, below) for c in reversed(list(children(cur))))


def chain_at(module: ast.Module, offset: int) -> Chain:
    """The nodes whose span holds the offset, outermost first (the innermost last)."""
    out: list[ast.Node] = [module]
    cur: ast.Node = module
    while True:
        nxt = next((c for c in children(cur) if contains(c.span, offset)), None)
        if nxt is None:
            return tuple(out)
        out.append(nxt)
        cur = nxt


def schema_name(chain: Chain) -> str | None:
    """The schema block (semantic/schema.py name) that the innermost statement of the chain sits in."""
    for node in reversed(chain):
        if isinstance(node, ast.Block):
            if node.kind == "method":
                return f"method.{node.label.name}" if isinstance(node.label, ast.Ident) else None
            return node.kind
        if isinstance(node, ast.DataDecl):
            return "data"
        if isinstance(node, ast.Recipe):
            return "recipe"
        if isinstance(node, ast.ModelCard):
            return "model_card"
    return None


def enclosing(chain: Chain, kind: type) -> ast.Node | None:
    return next((n for n in reversed(chain) if isinstance(n, kind)), None)


def ident_name(node: ast.Node | None) -> str | None:
    return node.name if isinstance(node, ast.Ident) else None
