"""The cursor's context read from the raw text, so completion works while the recipe does not parse.

A tolerant pass over the tokens before the cursor (lexer.lossless_tokens: a split that never fails,
unlike the parser's lexer, which stops at the first bad character) tracks the open blocks and the words of the
statement being written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ftlang.syntax.lexer import lossless_tokens

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class Cursor:
    blocks: list[str] = field(default_factory=list)  # schema block names, outermost first
    recipe: str | None = None  # the enclosing recipe's name
    words: list[str] = field(default_factory=list)  # the statement's tokens before the cursor
    partial: str = ""  # the identifier being typed
    in_string: bool = False
    open: list[str] = field(default_factory=list)  # open ( and [ of the statement, innermost last
    calls: list[str] = field(default_factory=list)  # the call each open ( belongs to
    assigned: set[str] = field(default_factory=set)  # keys the enclosing block sets before the cursor

    @property
    def block(self) -> str | None:
        return self.blocks[-1] if self.blocks else None

    @property
    def call(self) -> str | None:
        return self.calls[-1] if self.calls else None


def _schema_of(header: list[str]) -> str:
    if not header:
        return "?"
    first = header[0]
    if first == "method":
        return f"method.{header[1]}" if len(header) > 1 and _WORD.match(header[1]) else "method"
    return first  # recipe, model_card, data, train, quant, fields, register, ...


def cursor_at(text: str, offset: int) -> Cursor:
    c = Cursor()
    frames: list[tuple[str, list[str], set[str]]] = []  # (schema name, header words, keys set)
    words: list[str] = []
    opens: list[str] = []
    calls: list[str] = []
    newline = False
    toks = lossless_tokens(text[:max(0, offset)])
    for i, tok in enumerate(toks):
        if tok.isspace():
            newline = newline or "\n" in tok
            continue
        if tok.startswith("#"):
            continue
        if newline and not opens and tok not in ("|", "=") and (not words or words[-1] not in ("=", "|", ",")):
            words = []  # a new line starts a new statement unless a pipeline or an operator carries on
        newline = False
        if tok == "{":
            name = _schema_of(words)
            if name == "recipe" and len(words) > 1:
                c.recipe = words[1]
            frames.append((name, words, set()))
            words, opens, calls = [], [], []
            continue
        if tok == "}":
            if frames:
                name, _, _ = frames.pop()
                if name == "recipe":
                    c.recipe = None
            words, opens, calls = [], [], []
            continue
        if tok == "," and not opens:
            words = []
            continue
        if tok in ("(", "["):
            opens.append(tok)
            calls.append(words[-1] if tok == "(" and words else "")
        elif tok in (")", "]") and opens:
            opens.pop()
            calls.pop()
        if tok == "=" and len(words) == 1 and frames and _WORD.match(words[0]):
            frames[-1][2].add(words[0])
        words.append(tok)
        if i == len(toks) - 1 and tok.startswith('"') and (len(tok) == 1 or not tok.endswith('"')):
            c.in_string = True
    if words and _WORD.match(words[-1]) and toks and not toks[-1].isspace():
        c.partial = words.pop()
    if c.in_string and words:
        c.partial = words.pop()[1:]
    c.blocks = [name for name, _, _ in frames]
    c.assigned = frames[-1][2] if frames else set()
    c.words, c.open, c.calls = words, opens, calls
    return c


def word_at(text: str, offset: int) -> tuple[int, int, str]:
    """The identifier (or FT code) around an offset: (start, end, word); empty when none."""
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    end = offset
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return start, end, text[start:end]
