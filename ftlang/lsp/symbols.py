"""Document symbols (the outline) and the inlay hint on each method line."""

from __future__ import annotations

from lsprotocol import types as T

from ftlang.lsp import names
from ftlang.lsp.positions import Positions
from ftlang.lsp.state import Analysis
from ftlang.semantic.units import human_bytes, human_count
from ftlang.syntax import ast

S = T.SymbolKind


def _sym(pos: Positions, name: str, kind: T.SymbolKind, node: ast.Node, sel, detail: str | None = None,
         children: list | None = None) -> T.DocumentSymbol:
    return T.DocumentSymbol(name=name or "?", kind=kind, range=pos.span_range(node.span),
                            selection_range=pos.span_range(sel), detail=detail, children=children or None)


def _body(pos: Positions, body: tuple[ast.Stmt, ...]) -> list[T.DocumentSymbol]:
    out = []
    for st in body:
        if isinstance(st, ast.Assign):
            out.append(_sym(pos, st.key, S.Property, st, st.key_span, names.value_text(st.value)[:60]))
        elif isinstance(st, ast.Block):
            label = st.label.name if isinstance(st.label, ast.Ident) else getattr(st.label, "value", None)
            out.append(_sym(pos, f"{st.kind} {label}" if label else st.kind, S.Namespace, st, st.kind_span,
                            children=_body(pos, st.body)))
        elif isinstance(st, ast.DataDecl):
            out.append(_sym(pos, st.name, S.Variable, st, st.name_span, names.value_text(st.source)[:60],
                            _body(pos, st.body or ())))
        elif isinstance(st, ast.DatasetDecl):
            out.append(_sym(pos, st.name, S.Variable, st, st.name_span, "dataset"))
        elif isinstance(st, ast.AliasDecl):
            out.append(_sym(pos, st.name, S.Constant, st, st.name_span, names.value_text(st.value)[:60]))
    return out


def document_symbols(a: Analysis, encoding: str) -> list[T.DocumentSymbol]:
    if a.module is None:
        return []
    pos = Positions(a.source, encoding)
    out = []
    for it in a.module.items:
        if isinstance(it, ast.Import):
            out.append(_sym(pos, f"import {it.path.value}", S.File, it, it.path.span))
        elif isinstance(it, ast.Param):
            out.append(_sym(pos, it.name, S.Constant, it, it.name_span, names.value_text(it.value)[:60]))
        elif isinstance(it, ast.Recipe):
            detail = f"extends {it.extends.name}" if it.extends else "recipe"
            out.append(_sym(pos, it.name, S.Class, it, it.name_span, detail, _body(pos, it.body)))
        elif isinstance(it, ast.ModelCard):
            out.append(_sym(pos, it.name, S.Struct, it, it.name_span, "model card", _body(pos, it.body)))
    return out


def hint_label(ctx) -> str | None:
    est = names.method_estimate(ctx)
    if est is None:
        return None
    return f"≈ {human_count(est.trainable)} trainable · {human_bytes(est.memory.peak_bytes)} peak"


def inlay_hints(a: Analysis, encoding: str, line_from: int = 0, line_to: int | None = None) -> list[T.InlayHint]:
    """At the end of each recipe's method line: `≈ 20.0M trainable · 17.6 GiB peak` (at the end of the
    recipe's first line when its method comes from the recipe it extends)."""
    if a.module is None:
        return []
    pos = Positions(a.source, encoding)
    out = []
    for it in a.module.items:
        if not isinstance(it, ast.Recipe):
            continue
        method = next((st for st in it.body if isinstance(st, ast.Block) and st.kind == "method"), None)
        line0 = (method.kind_span if method is not None else it.name_span).line - 1
        if line0 < line_from or (line_to is not None and line0 > line_to):
            continue
        label = hint_label(names.context_for(a, it.name))
        if label is not None:
            out.append(T.InlayHint(position=pos.line_end(line0), label=label, padding_left=True,
                                   kind=T.InlayHintKind.Type))
    return out
