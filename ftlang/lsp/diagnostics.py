"""ftlang Diagnostics → LSP diagnostics: stable code, severity, full range, help and notes as related
information. A problem found in another file (an imported recipe, a data file) is shown at the line of
this document that leads to it (its import or data declaration), pointing at the real place."""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as T

from ftlang.diagnostics import Diagnostic, Severity
from ftlang.lsp.positions import Positions
from ftlang.lsp.state import Analysis, path_to_uri, real
from ftlang.source import Span
from ftlang.syntax import ast

SEVERITY = {Severity.ERROR: T.DiagnosticSeverity.Error, Severity.WARNING: T.DiagnosticSeverity.Warning,
            Severity.INFO: T.DiagnosticSeverity.Information}
_WHERE = re.compile(r"(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+)")


def _point(file: str, line: int, col: int, root: Path | None) -> T.Location:
    p = Path(file)
    if not p.is_absolute() and root is not None:
        p = root / p
    pos = T.Position(line=max(line - 1, 0), character=max(col - 1, 0))
    return T.Location(uri=path_to_uri(p), range=T.Range(start=pos, end=pos))


def _span_location(span: Span, root: Path | None) -> T.Location:
    loc = _point(span.file, span.line, span.column, root)
    end = T.Position(line=max(span.end_line - 1, 0), character=max(span.end_column - 1, 0))
    return T.Location(uri=loc.uri, range=T.Range(start=loc.range.start, end=end))


def _anchor(a: Analysis, file: str) -> Span | None:
    """The statement of this document that leads to a problem in another file."""
    module = a.module
    if module is None:
        return None
    from ftlang.semantic.resolve import import_target

    target = real(file if Path(file).is_absolute() or a.root is None else a.root / file)
    for it in module.items:
        if isinstance(it, ast.Import) and "\0" not in it.path.value:
            if real(import_target(it.path.value, a.doc.path)[0]) == target:
                return it.span
    from ftlang.lsp.locate import walk

    for node, _up in walk(module):
        if isinstance(node, ast.DataDecl) and isinstance(node.source, ast.Call) and node.source.args:
            arg = node.source.args[0]
            if isinstance(arg, ast.Str) and "\0" not in arg.value and real(a.doc.path.parent / arg.value) == target:
                return node.name_span
    return None


def to_lsp(a: Analysis, diags: list[Diagnostic], encoding: str) -> list[T.Diagnostic]:
    pos = Positions(a.source, encoding)
    mine = real(a.doc.path)
    out = []
    for d in diags:
        here = d.span is None or d.span.file == a.source.path or real(d.span.file) == mine
        span = d.span if here else _anchor(a, d.span.file)
        rng = pos.span_range(span)
        related = []
        message = d.message
        if not here:
            message = f"in {d.span.file}:{d.span.line}:{d.span.column}: {d.message}"
            related.append(T.DiagnosticRelatedInformation(location=_span_location(d.span, a.root),
                                                          message=d.message))
        here_loc = T.Location(uri=a.doc.uri, range=rng)
        if d.help:
            related.append(T.DiagnosticRelatedInformation(location=here_loc, message=f"help: {d.help}"))
        for note in d.notes:
            m = _WHERE.search(note)
            loc = _point(m["file"], int(m["line"]), int(m["col"]), a.root) if m else here_loc
            related.append(T.DiagnosticRelatedInformation(location=loc, message=note))
        out.append(T.Diagnostic(range=rng, message=message, severity=SEVERITY[d.severity], code=d.code,
                                source="ftlang", related_information=related or None,
                                data={"help": d.help} if d.help else None))
    return out
