"""Formatting (the `ftlang fmt` formatter) and code actions: apply a diagnostic's did-you-mean, or
silence its code on that line with `# ftlang: ignore[CODE]` (ftlang/syntax/suppress.py's syntax)."""

from __future__ import annotations

import re

from lsprotocol import types as T

from ftlang.lsp.positions import Positions
from ftlang.lsp.state import Analysis
from ftlang.syntax.suppress import DIRECTIVE, comment_start

_GUESS = re.compile(r"did you mean `([^`]+)`\?")
_REPLACE = re.compile(r"replace `([^`]+)` with `([^`]+)`")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_edits(a: Analysis, encoding: str) -> list[T.TextEdit] | None:
    """One edit replacing the whole text with its canonical layout; None when it does not parse."""
    from ftlang.syntax.format import format_source

    out, _diags = format_source(a.source)
    if out is None:
        return None
    if out == a.text:
        return []
    return [T.TextEdit(range=Positions(a.source, encoding).full_range(), new_text=out)]


def _edit(uri: str, edits: list[T.TextEdit]) -> T.WorkspaceEdit:
    return T.WorkspaceEdit(changes={uri: edits})


def _did_you_mean(a: Analysis, d: T.Diagnostic, pos: Positions) -> T.CodeAction | None:
    help_text = (d.data or {}).get("help") if isinstance(d.data, dict) else None
    text = f"{d.message}\n{help_text or ''}"
    m = _REPLACE.search(text)
    wrong, guess = (m.group(1), m.group(2)) if m else (None, (g := _GUESS.search(text)) and g.group(1))
    if not guess:
        return None
    start, end = pos.offset(d.range.start), pos.offset(d.range.end)
    found = a.text[start:end]
    word = _IDENT.search(found) if wrong is None else re.search(rf"\b{re.escape(wrong)}\b", found)
    if word is None:
        return None
    rng = pos.range(start + word.start(), start + word.end())
    return T.CodeAction(title=f"Change `{word.group(0)}` to `{guess}`", kind=T.CodeActionKind.QuickFix,
                        diagnostics=[d], is_preferred=True,
                        edit=_edit(a.doc.uri, [T.TextEdit(range=rng, new_text=guess)]))


def _ignore(a: Analysis, d: T.Diagnostic, pos: Positions) -> T.CodeAction | None:
    code = str(d.code or "")
    if not code:
        return None
    line0 = d.range.start.line
    line = a.source.line_text(line0 + 1)
    hash_at = comment_start(line)
    directive = DIRECTIVE.search(line, hash_at) if hash_at is not None else None
    base = a.source._line_starts[min(line0, len(a.source._line_starts) - 1)]
    if directive is not None:
        codes = directive.group("codes")
        if codes is None or code.upper() in codes.upper():
            return None  # a bare ignore (every warning) or the code is already there
        at = base + directive.end() - 1  # before the closing ]
        new, rng = f", {code}", pos.range(at, at)
    elif hash_at is not None:  # an existing comment: the directive goes in front of its text
        rest = line[hash_at + 1:].strip()
        new, rng = f"# ftlang: ignore[{code}] {rest}".rstrip(), pos.range(base + hash_at, base + len(line))
    else:
        end = base + len(line.rstrip())
        new, rng = f"  # ftlang: ignore[{code}]", pos.range(end, base + len(line))
    return T.CodeAction(title=f"Ignore {code} on this line", kind=T.CodeActionKind.QuickFix, diagnostics=[d],
                        edit=_edit(a.doc.uri, [T.TextEdit(range=rng, new_text=new)]))


def code_actions(a: Analysis, diagnostics: list[T.Diagnostic], encoding: str) -> list[T.CodeAction]:
    pos = Positions(a.source, encoding)
    out = []
    for d in diagnostics:
        if d.source not in (None, "ftlang"):
            continue
        for make in (_did_you_mean, _ignore):
            action = make(a, d, pos)
            if action is not None:
                out.append(action)
    return out
