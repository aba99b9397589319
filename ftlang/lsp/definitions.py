"""Go to definition and find references: imports, params, model cards, recipes (`extends`), and the
`data` / `dataset` names of a recipe (including those a parent recipe declares).

A name is identified by where it is declared (file and offset of its name), so references across
files compare declarations, not spellings. References search the open documents and every .ft file
of the workspace that the checker's resolver can load.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ftlang.lsp.locate import Chain, chain_at, enclosing, walk
from ftlang.lsp.positions import contains
from ftlang.lsp.state import Analysis, real
from ftlang.source import Span
from ftlang.syntax import ast

MAX_FILES = 400  # workspace files searched for references


def _data_decl(program, recipe: str | None, name: str) -> Span | None:
    bound = program.bound.get(recipe) if recipe is not None else None
    for st in bound.body if bound is not None else ():
        if isinstance(st, (ast.DataDecl, ast.DatasetDecl)) and st.name == name:
            return st.name_span
    return None


def _is_data_use(chain: Chain) -> bool:
    """An identifier in a position that names a data source or dataset."""
    node, parent = chain[-1], chain[-2] if len(chain) > 1 else None
    if isinstance(parent, ast.DatasetDecl) and node in parent.stages:
        return True
    if isinstance(parent, ast.Forgetting):
        return True
    if isinstance(parent, ast.Block) and parent.kind == "split" and parent.label is node:
        return True
    call = parent if isinstance(parent, ast.Call) else (
        chain[-3] if isinstance(parent, ast.KwArg) and len(chain) > 2 else None)
    return isinstance(call, ast.Call) and call.name == "mix" and enclosing(chain, ast.DatasetDecl) is not None


def target(program, chain: Chain, offset: int) -> Span | None:
    """The declaration (its name's span) of the name under the cursor."""
    node = chain[-1]
    recipe = enclosing(chain, ast.Recipe)
    rname = recipe.name if recipe is not None else None
    for decl in (ast.Param, ast.ModelCard, ast.Recipe, ast.DataDecl, ast.DatasetDecl):
        if isinstance(node, decl) and contains(node.name_span, offset):
            return node.name_span
    if not isinstance(node, ast.Ident):
        return None
    parent = chain[-2]
    if isinstance(parent, ast.Recipe):  # extends NAME
        r = program.recipes.get(node.name)
        return r.name_span if r is not None else None
    if _is_data_use(chain):
        return _data_decl(program, rname, node.name)
    assign = enclosing(chain, ast.Assign)
    if assign is not None and assign.key == "model" and isinstance(chain[-2], ast.Assign) and node.name in program.cards:
        return program.cards[node.name].name_span
    if node.name in program.params and enclosing(chain, ast.Gate) is None:
        return program.params[node.name].name_span
    if node.name in program.cards:
        return program.cards[node.name].name_span
    return None


def definition(a: Analysis, offset: int) -> Span | Path | None:
    """The declaration under the cursor, or the file an import string names."""
    if a.module is None or a.program is None:
        return None
    chain = chain_at(a.module, offset)
    if isinstance(chain[-1], ast.Str) and len(chain) > 1 and isinstance(chain[-2], ast.Import):
        from ftlang.semantic.paths import is_file
        from ftlang.semantic.resolve import import_target

        path, std = import_target(chain[-1].value, a.doc.path)
        if "\0" in chain[-1].value or not (std or (a.root is not None and _inside(path, a.root))):
            return None  # never a file outside the workspace
        return path if is_file(path) else None
    return target(a.program, chain, offset)


def _inside(path: Path, root: Path) -> bool:
    from ftlang.semantic.paths import inside

    return inside(path, root)


def _same(s: Span | None, t: Span) -> bool:
    return s is not None and s.start == t.start and real(s.file) == real(t.file)


def uses_in(program, decl: Span) -> Iterator[Span]:
    """Every name in the program's modules whose declaration is `decl` (the declaration itself too)."""
    for module in program.modules:
        for node, up in walk(module):
            if isinstance(node, (ast.Param, ast.ModelCard, ast.Recipe, ast.DataDecl, ast.DatasetDecl)):
                if _same(node.name_span, decl):
                    yield node.name_span
            elif isinstance(node, ast.Ident) and node.span.end - node.span.start == decl.end - decl.start:
                chain = (*up, node)
                if _same(target(program, chain, node.span.start), decl):
                    yield node.span


def workspace_files(roots: list[Path]) -> list[Path]:
    out: list[Path] = []
    for r in roots:
        for p in sorted(r.rglob("*.ft")):
            if not any(part.startswith(".") for part in p.relative_to(r).parts):
                out.append(p)
            if len(out) >= MAX_FILES:
                return out
    return out
