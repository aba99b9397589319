"""The ftlang lexer: one compiled regex built from the terminals of grammar/ftlang.lark.

Lark's own lexer tracks lines and columns for every token and runs a callback chain; ftlang needs
only offsets (spans are computed from them), so a single `re.finditer` pass is about twice as fast.
The terminal definitions still come from the grammar file, so the grammar stays the one source of
truth. The scan also collects comments and tracks brackets, which the error messages use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PAIRS = {"RBRACE": "LBRACE", "RSQB": "LSQB", "RPAR": "LPAR"}
_OPENERS = frozenset(_PAIRS.values())


@dataclass
class Scan:
    """What one pass of the lexer saw besides the tokens."""

    comments: list[Any] = field(default_factory=list)
    open: list[Any] = field(default_factory=list)  # unclosed brackets, innermost last
    unmatched: Any = None  # the first closer with no opener at all
    mismatch: tuple[Any, Any] | None = None  # (closer, the inner opener it skipped)
    bad_char: int | None = None  # offset of the first character no terminal matches


class Lexer:
    def __init__(self, terminals: list[Any]) -> None:
        from lark import Token

        self._token = Token
        keywords: dict[str, str] = {}
        punct, regexes = [], []
        for t in terminals:
            if type(t.pattern).__name__ == "PatternStr":
                if _IDENT.match(t.pattern.value):
                    keywords[t.pattern.value] = t.name
                else:
                    punct.append(t)
            else:
                regexes.append(t)
        # Lark's order: higher priority first; among literals, longer first ("<=" before "<").
        regexes.sort(key=lambda t: -t.priority)
        punct.sort(key=lambda t: -len(t.pattern.value))
        ws = next(t for t in regexes if t.name == "WS").pattern.to_regexp()
        parts = [f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in regexes if t.name != "WS"]
        parts += [f"(?P<{t.name}>{re.escape(t.pattern.value)})" for t in punct]
        parts.append("(?P<_BAD>.)")
        parts.append(r"(?P<_END>\Z)")  # trailing whitespace: without it the prefix would backtrack
        # Whitespace is skipped as an optional prefix of every match, which halves the matches.
        self._master = re.compile(f"(?:{ws})?(?:{'|'.join(parts)})", re.S)
        self._keywords = keywords

    def tokens(self, text: str, scan: Scan) -> Iterator[Any]:
        """Tokens in order; stops at the first character no terminal matches (scan.bad_char)."""
        make = self._token
        keywords = self._keywords
        comments = scan.comments
        brackets = scan.open
        for m in self._master.finditer(text):
            kind = m.lastgroup
            if kind == "_END":
                return
            start, end = m.span(kind)
            value = text[start:end]
            if kind == "NAME":
                kind = keywords.get(value, "NAME")
            elif kind == "_BAD":
                scan.bad_char = start
                return
            tok = make(kind, value, start, None, None, None, None, end)
            if kind == "COMMENT":
                comments.append(tok)
                continue
            if kind in _OPENERS:
                brackets.append(tok)
            elif kind in _PAIRS:
                _close(tok, scan)
            yield tok


def _close(tok: Any, scan: Scan) -> None:
    want = _PAIRS[tok.type]
    brackets = scan.open
    if brackets and brackets[-1].type == want:
        brackets.pop()
    elif any(o.type == want for o in brackets):
        if scan.mismatch is None:
            scan.mismatch = (tok, brackets[-1])
        while brackets[-1].type != want:
            brackets.pop()
        brackets.pop()
    elif scan.unmatched is None:
        scan.unmatched = tok


# A lossless split of any text (strings, comments, numbers, words, whitespace, single characters)
# that never fails: the editor's cursor context reads broken recipes with it, the fuzzer mutates with it.
_LOSSLESS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[0-9][\w.%]*|\w+|\s+|.', re.S)


def lossless_tokens(text: str) -> list[str]:
    """"".join(lossless_tokens(t)) == t for every t."""
    return _LOSSLESS.findall(text)
