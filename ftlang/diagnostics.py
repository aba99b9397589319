"""Diagnostics: one shape for every user-facing problem, from a syntax error to a bad data row.

Renderers (human, concise, json, github, sarif) live in ftlang/render.py so this module stays
import-light for every stage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from ftlang.source import Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Diagnostic:
    code: str  # stable, e.g. "FT101"; documented by `ftlang explain CODE`
    severity: Severity
    message: str
    span: Span | None  # None only for problems with no file at all (e.g. a missing recipe path)
    help: str | None = None
    notes: tuple[str, ...] = ()  # extra lines, e.g. "declared here: recipe.ft:12:3"

    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (*self.span.sort_key(), self.code)

    def to_json(self) -> dict:
        s = self.span
        return {
            "file": s.file if s else None,
            "line": s.line if s else None,
            "column": s.column if s else None,
            "end_line": s.end_line if s else None,
            "end_column": s.end_column if s else None,
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "help": self.help,
        }


def error(code: str, message: str, span: Span | None, help: str | None = None, **kw) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, message, span, help, **kw)


def warning(code: str, message: str, span: Span | None, help: str | None = None, **kw) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, message, span, help, **kw)


def info(code: str, message: str, span: Span | None, help: str | None = None, **kw) -> Diagnostic:
    return Diagnostic(code, Severity.INFO, message, span, help, **kw)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by position and de-duplicated (the same code at the same span is reported once)."""
    seen: set[tuple] = set()
    out = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = (d.code, d.span, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def has_errors(diags: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diags)


class DiagnosticError(Exception):
    """Raised by any stage (plan building, data reading, run) to stop with positioned diagnostics.

    The CLI catches it, renders the diagnostics and exits 1; it never shows a traceback.
    """

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        self.diagnostics = [diagnostics] if isinstance(diagnostics, Diagnostic) else list(diagnostics)
        super().__init__("; ".join(f"{d.code}: {d.message}" for d in self.diagnostics))
