"""The one helper that positions a row problem (the FT6xx codes themselves are declared in ftlang/codes/data.py).

A row problem points at the DATA file and line; its notes name the recipe line that declared the source,
so `path:line: message` and `declared here: recipe.ft:L:C` always come together.
"""

from __future__ import annotations

from ftlang.codes import lookup
from ftlang.diagnostics import Diagnostic, Severity
from ftlang.plan import Loc
from ftlang.source import Span


def _default_help(code: str) -> str | None:
    declared = lookup(code)
    return declared.help if declared is not None else None


def row_span(path: str, line: int, column: int = 1) -> Span:
    """A span at one line of a data file (character offsets are unknown and unused there)."""
    line = max(1, line)
    return Span(path, 0, 0, line, column, line, column)


def declared_note(loc: Loc | None, name: str) -> tuple[str, ...]:
    if loc is None:
        return (f"source `{name}` has no recipe location",)
    return (f"declared here: {loc.file}:{loc.line}:{loc.column} (data {name})",)


def row_problem(code: str, message: str, path: str, line: int, *, loc: Loc | None, source: str,
                help: str | None = None, severity: Severity = Severity.ERROR) -> Diagnostic:
    return Diagnostic(code, severity, message, row_span(path, line), help or _default_help(code),
                      declared_note(loc, source))
