"""`# ftlang: ignore[CODE, CODE2]` comments: suppress those codes on that line.

A suppression comment on a line of its own applies to the next line that holds code, so a long
statement can carry its suppression above it. `ignore[*]` or a bare `# ftlang: ignore` suppresses
every warning there; errors are suppressed only when named explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ftlang.diagnostics import Diagnostic, Severity
from ftlang.source import SourceFile

ALL = "*"
DIRECTIVE = re.compile(r"#\s*ftlang:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_CODE = re.compile(r"[A-Za-z]+[0-9]+|\*")


def suppressions(source: SourceFile) -> dict[int, set[str]]:
    """Line (1-based) → suppressed codes (upper-case; '*' for all warnings)."""
    out: dict[int, set[str]] = {}
    pending: set[str] = set()
    for lineno in range(1, source.line_count + 1):
        line = source.line_text(lineno)
        hash_at = comment_start(line)
        code_part = line if hash_at is None else line[:hash_at]
        codes: set[str] = set()
        if hash_at is not None:
            m = DIRECTIVE.search(line, hash_at)
            if m is not None:
                raw = m.group("codes")
                codes = {ALL} if raw is None else {c.upper() for c in _CODE.findall(raw)}
        if code_part.strip():
            here = pending | codes
            if here:
                out.setdefault(lineno, set()).update(here)
            pending = set()
        elif codes:
            pending |= codes
    return out


def comment_start(line: str) -> int | None:
    """Index of the '#' that starts a comment (not one inside a string), or None."""
    in_str = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_str:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "#":
            return i
        i += 1
    return None


def is_suppressed(diag: Diagnostic, table: Mapping[int, set[str]]) -> bool:
    if diag.span is None:
        return False
    codes = table.get(diag.span.line)
    if not codes:
        return False
    if diag.code.upper() in codes:
        return True
    return ALL in codes and diag.severity is not Severity.ERROR


def apply_suppressions(
    diags: Iterable[Diagnostic], sources: Mapping[str, SourceFile] | Iterable[SourceFile]
) -> list[Diagnostic]:
    """The diagnostics minus those suppressed by a comment in their own file."""
    by_path = dict(sources) if isinstance(sources, Mapping) else {s.path: s for s in sources}
    tables: dict[str, dict[int, set[str]]] = {}
    kept = []
    for d in diags:
        if d.span is not None and d.span.file in by_path:
            if d.span.file not in tables:
                tables[d.span.file] = suppressions(by_path[d.span.file])
            if is_suppressed(d, tables[d.span.file]):
                continue
        kept.append(d)
    return kept
