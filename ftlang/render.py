"""Render diagnostics for people and tools: human (rustc-style), concise, json, github, sarif.

    render(diagnostics, fmt="human", *, color=False, sources=None) -> str

`sources` maps a path to its SourceFile (or text) for files that are not on disk (parse_text, stdin);
otherwise the source line is read from the span's file, once per file, so a diagnostic on line
80,000 of a data file costs one read, not one per diagnostic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ftlang.diagnostics import Diagnostic, Severity, sort_diagnostics
from ftlang.source import SourceFile

FORMATS = ("human", "concise", "json", "github", "sarif")
_TAB = "    "
_MAX_SHOWN = 200  # characters of a source line shown around the caret (data files have huge lines)
_WHOLE_FILE_LIMIT = 32 * 2**20
# Files read for source lines, kept across render() calls (a data run renders row errors one by
# one); keyed by mtime and size so an edited file is read again.
_FILE_CACHE: dict[str, tuple[tuple[int, int], SourceFile]] = {}
_FILE_CACHE_SIZE = 16

_COLORS = {
    Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m", Severity.INFO: "\x1b[1;36m",
}
_BOLD, _BLUE, _RESET = "\x1b[1m", "\x1b[1;34m", "\x1b[0m"


def render(
    diagnostics: Iterable[Diagnostic],
    fmt: str = "human",
    *,
    color: bool = False,
    sources: Mapping[str, SourceFile | str] | None = None,
) -> str:
    diags = sort_diagnostics(diagnostics)
    if fmt == "human":
        return _human(diags, color, _Lines(sources))
    if fmt == "concise":
        return "\n".join(_concise(d) for d in diags)
    if fmt == "json":
        return json.dumps([d.to_json() for d in diags], indent=2)
    if fmt == "github":
        return "\n".join(_github(d) for d in diags)
    if fmt == "sarif":
        return json.dumps(_sarif(diags), indent=2)
    raise ValueError(f"unknown diagnostics format {fmt!r}; choose one of {', '.join(FORMATS)}")


def summary(diags: Iterable[Diagnostic]) -> str:
    """'2 errors, 1 warning' (empty when there is nothing to report)."""
    counts = {s: 0 for s in Severity}
    for d in diags:
        counts[d.severity] += 1
    words = {Severity.ERROR: ("error", "errors"), Severity.WARNING: ("warning", "warnings"),
             Severity.INFO: ("info", "infos")}
    parts = [f"{n} {words[s][n != 1]}" for s, n in counts.items() if n]
    return ", ".join(parts)


# ---------------------------------------------------------------------------- source lines


class _Lines:
    """Line lookup by (file, line), from the given sources or the file on disk, read at most once."""

    def __init__(self, sources: Mapping[str, SourceFile | str] | None) -> None:
        self.files: dict[str, SourceFile | None] = {}
        for path, src in (sources or {}).items():
            self.files[path] = src if isinstance(src, SourceFile) else SourceFile(path, src)

    def get(self, path: str, line: int) -> str | None:
        if path not in self.files:
            self.files[path] = self._read(path)
        src = self.files[path]
        if src is None:
            return _stream_line(path, line)
        if line < 1 or line > src.line_count:
            return None
        return src.line_text(line)

    @staticmethod
    def _read(path: str) -> SourceFile | None:
        try:
            st = os.stat(path)
            if st.st_size > _WHOLE_FILE_LIMIT:
                return None  # read lazily line by line instead
            key = (st.st_mtime_ns, st.st_size)
            hit = _FILE_CACHE.get(path)
            if hit is not None and hit[0] == key:
                return hit[1]
            src = SourceFile.read(path)
        except (OSError, ValueError):
            return None
        if len(_FILE_CACHE) >= _FILE_CACHE_SIZE:
            _FILE_CACHE.pop(next(iter(_FILE_CACHE)))
        _FILE_CACHE[path] = (key, src)
        return src


def _stream_line(path: str, line: int) -> str | None:
    try:
        with open(path, "rb") as f:
            for i, raw in enumerate(f, 1):
                if i == line:
                    return raw[: 64 * 1024].decode("utf-8", errors="replace").rstrip("\r\n")
    except (OSError, ValueError):
        return None
    return None


# ---------------------------------------------------------------------------- human


def _human(diags: list[Diagnostic], color: bool, lines: _Lines) -> str:
    if not diags:
        return ""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    out: list[str] = []
    for d in diags:
        sev = paint(_COLORS[d.severity], f"{d.severity.value}[{d.code}]")
        out.append(f"{sev}{paint(_BOLD, ': ' + _one_line(d.message))}")
        s = d.span
        if s is not None:
            gutter = " " * len(str(s.line))
            out.append(f"{gutter}{paint(_BLUE, '-->')} {s.file}:{s.line}:{s.column}")
            text = lines.get(s.file, s.line)
            if text is not None:
                shown, caret_from, caret_len = _caret_window(text, s.column, s.end_line, s.end_column, s.line)
                out.append(f"{gutter} {paint(_BLUE, '|')}")
                out.append(f"{paint(_BLUE, str(s.line))} {paint(_BLUE, '|')} {shown}")
                carets = paint(_COLORS[d.severity], "^" * caret_len)
                out.append(f"{gutter} {paint(_BLUE, '|')} {' ' * caret_from}{carets}")
                if s.end_line > s.line:
                    out.append(f"{gutter} {paint(_BLUE, '|')} {' ' * caret_from}"
                               f"(the span continues to line {s.end_line})")
        pad = " " * (len(str(s.line)) + 1) if s is not None else ""
        if d.help:
            out.append(f"{pad}{paint(_BLUE, '=')} {paint(_BOLD, 'help')}: {_one_line(d.help)}")
        for note in d.notes:
            out.append(f"{pad}{paint(_BLUE, '=')} {paint(_BOLD, 'note')}: {_one_line(note)}")
        out.append("")
    out.append(summary(diags))
    return "\n".join(out)


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "\n    ")


def _caret_window(text: str, column: int, end_line: int, end_column: int, line: int) -> tuple[str, int, int]:
    """The displayed line, the caret offset and the caret count (tabs expanded, long lines clipped)."""
    col0 = max(column - 1, 0)
    end0 = end_column - 1 if end_line == line else len(text)
    end0 = max(end0, col0 + 1)
    before = text[:col0].replace("\t", _TAB)
    inside = text[col0:end0].replace("\t", _TAB)
    after = text[end0:].replace("\t", _TAB)
    caret_len = max(1, min(len(inside), _MAX_SHOWN)) if inside else 1
    if len(before) > _MAX_SHOWN // 2:  # keep the caret on screen on very long lines
        before = "…" + before[-(_MAX_SHOWN // 2):]
    shown = before + inside[:_MAX_SHOWN] + after[: max(0, _MAX_SHOWN - len(inside))]
    shown = "".join(ch if ch.isprintable() or ch == " " else "\ufffd" for ch in shown)
    return shown.rstrip(), len(before), caret_len


# ---------------------------------------------------------------------------- concise / github


def _concise(d: Diagnostic) -> str:
    where = f"{d.span.file}:{d.span.line}:{d.span.column}: " if d.span else ""
    return f"{where}{d.severity.value}[{d.code}]: {_flat(d.message)}"


def _flat(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _gh_data(text: str) -> str:
    # https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts (escapeData)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    # escapeProperty: data escapes plus ':' and ','
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(d: Diagnostic) -> str:
    props = []
    if d.span is not None:
        s = d.span
        props += [f"file={_gh_prop(s.file)}", f"line={s.line}", f"col={s.column}",
                  f"endLine={s.end_line}", f"endColumn={s.end_column}"]
    props.append(f"title={_gh_prop(d.code)}")
    message = d.message + (f"\nhelp: {d.help}" if d.help else "")
    return f"::{_GITHUB_LEVEL[d.severity]} {','.join(props)}::{_gh_data(message)}"


# ---------------------------------------------------------------------------- sarif

_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _uri(path: str) -> str:
    from urllib.parse import quote

    p = Path(path)
    if p.is_absolute():
        return p.as_uri()
    return quote(p.as_posix())


def _rule_text(code: str, first_message: str) -> str:
    from ftlang.codes import lookup

    declared = lookup(code)
    return declared.title if declared is not None else first_message


def _sarif(diags: list[Diagnostic]) -> dict:
    from ftlang import __version__

    rules: list[dict] = []
    index: dict[str, int] = {}
    results: list[dict] = []
    for d in diags:
        if d.code not in index:
            index[d.code] = len(rules)
            rules.append({"id": d.code, "shortDescription": {"text": _rule_text(d.code, d.message)},
                          "defaultConfiguration": {"level": _SARIF_LEVEL[d.severity]}})
        text = d.message + (f"\nhelp: {d.help}" if d.help else "")
        result: dict = {"ruleId": d.code, "ruleIndex": index[d.code], "level": _SARIF_LEVEL[d.severity],
                        "message": {"text": text}}
        if d.span is not None:
            s = d.span
            result["locations"] = [{"physicalLocation": {
                "artifactLocation": {"uri": _uri(s.file)},
                "region": {"startLine": s.line, "startColumn": s.column,
                           "endLine": s.end_line, "endColumn": s.end_column},
            }}]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ftlang", "version": __version__, "rules": rules}},
            "results": results,
        }],
    }
