"""Parse .ft text into the frozen AST of ftlang/syntax/ast.py, with friendly syntax errors.

    parse(source)          -> (Module | None, diagnostics)
    parse_text(text, path) -> (Module | None, diagnostics)

The Module is None exactly when an error diagnostic was produced. Lark is imported lazily and the
LALR tables are built once per process and cached on disk as JSON (never pickle), so importing
this module costs nothing and a warm `ftlang check` does not rebuild the grammar.
"""

from __future__ import annotations

import math
import sys
import threading
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ftlang import operators
from ftlang.diagnostics import Diagnostic, error
from ftlang.source import SourceFile, Span
from ftlang.syntax import ast
from ftlang.syntax.lexer import _PAIRS, Lexer, Scan

if TYPE_CHECKING:
    from lark import Lark, Token, Tree

# Recipes are a few kB; a cap keeps a pathological input from costing minutes of LALR time.
MAX_CHARS = 12_000_000
# Nesting the lowering accepts (blocks, lists, calls, parentheses, operators); realistic recipes stay
# under 15. The lowering recurses a few frames per level, so 100 stays clear of Python's stack limit.
MAX_DEPTH = 100
# Errors collected per file before giving up (each later one needs a re-parse, so only for small files).
MAX_ERRORS = 5
_MULTI_ERROR_CHARS = 200_000
# Python refuses int() of more digits than this (sys.int_info.default_max_str_digits is 4300).
_MAX_DIGITS = 4000


# ---------------------------------------------------------------------------- the Lark parser


_LARK: Lark | None = None
_LEXER: Lexer | None = None
_LOCK = threading.Lock()
# Every token is kept in the tree (keep_all_tokens) so spans come from the first and last token of a
# rule, which is cheaper than Lark's propagate_positions. Tokens come from ftlang/syntax/lexer.py
# (built from the grammar's terminals), so keywords are reserved everywhere: a contextual lexer
# would read `gate` after a dangling `<` as a name and report the mistake a line late.
_OPTIONS: dict[str, Any] = dict(
    parser="lalr", lexer="basic", propagate_positions=False, maybe_placeholders=False,
    keep_all_tokens=True,
)


def get_lark() -> Lark:
    """The process-wide Lark instance (built once; tables loaded from the JSON cache when present)."""
    global _LARK, _LEXER
    if _LARK is None:
        with _LOCK:
            if _LARK is None:
                from ftlang.syntax.grammar_cache import load_lark
                from ftlang.syntax.lexer import Lexer

                lark = load_lark(_OPTIONS, {})
                _LEXER = Lexer(lark.terminals)
                _LARK = lark
    return _LARK


class _BadChar(Exception):
    def __init__(self, pos: int, accepts: Any) -> None:
        self.pos = pos
        self.accepts = accepts


def _run(text: str) -> tuple[Tree | None, Exception | None, Scan]:
    """One parse: (tree, None, scan) or (None, the UnexpectedToken or _BadChar, scan)."""
    from lark import Token
    from lark.exceptions import UnexpectedToken

    lark = get_lark()
    assert _LEXER is not None
    scan = Scan()
    ip = lark.parse_interactive()
    feed = ip.feed_token
    try:
        for tok in _LEXER.tokens(text, scan):
            feed(tok)
        if scan.bad_char is not None:
            return None, _BadChar(scan.bad_char, ip.accepts()), scan
        tree = feed(Token("$END", "", len(text), None, None, None, None, len(text)))
    except UnexpectedToken as e:
        return None, e, scan
    return tree, None, scan


# ---------------------------------------------------------------------------- public entry points


def parse_text(text: str, path: str = "<string>") -> tuple[ast.Module | None, list[Diagnostic]]:
    return parse(SourceFile(path, text))


def parse(source: SourceFile) -> tuple[ast.Module | None, list[Diagnostic]]:
    text = source.text
    if len(text) > MAX_CHARS:
        return None, [error("FT008", f"file too large: {len(text):,} characters (at most {MAX_CHARS:,})",
                            source.span(0, 0), "split the recipe; recipes are usually a few kilobytes")]
    tree, diags, comments = _parse_collecting(source)
    if tree is None:
        return None, diags
    lowering = _Lower(source)
    try:
        items = tuple(lowering.top(t) for t in tree.children)
    except (_TooDeep, RecursionError) as e:  # RecursionError: a caller already deep in its own stack
        where = _span_of(source, e.node) if isinstance(e, _TooDeep) else source.span(0, 0)
        return None, [error("FT007", f"nesting too deep (more than {MAX_DEPTH} levels)", where,
                            "flatten the list, block or expression; recipes rarely nest more than a few levels")]
    if lowering.diags:
        return None, lowering.diags
    module = ast.Module(source.span(0, len(text)), source.path, items,
                        tuple(_comment(source, tok) for tok in comments))
    return module, []


def not_utf8(source: SourceFile, offset: int, what_happens: str) -> Diagnostic:
    """FT017 at the first byte that is not UTF-8 (`offset`: its character offset in the decoded text)."""
    return error("FT017", "the file is not valid UTF-8", source.span(offset, offset + 1),
                 f"save the file as UTF-8 (this is the first bad byte); {what_happens}")


def _comment(source: SourceFile, tok: Token) -> ast.Comment:
    start = tok.start_pos
    line_start = source.text.rfind("\n", 0, start) + 1
    trailing = source.text[line_start:start].strip() != ""
    return ast.Comment(source.span(start, tok.end_pos), str(tok).rstrip(), trailing)


# ---------------------------------------------------------------------------- syntax errors


def _import_lark() -> None:
    """Import lark without the optional `regex` module: ftlang's grammar needs only `re`, and importing
    `regex` is a fifth of the checker's start-up. A process that already has `regex` keeps it; the block
    is lifted right after, so later imports of `regex` (tokenizers) are unaffected."""
    if "lark" in sys.modules or "regex" in sys.modules:
        return
    sys.modules["regex"] = None  # type: ignore[assignment] - makes `import regex` raise ImportError
    try:
        import lark  # noqa: F401
    finally:
        del sys.modules["regex"]


def _parse_collecting(source: SourceFile) -> tuple[Tree | None, list[Diagnostic], list[Token]]:
    """Parse; on an error, blank the offending line and re-parse to find further independent errors."""
    _import_lark()
    from lark.exceptions import LarkError

    text = source.text
    diags: list[Diagnostic] = []
    while True:
        try:
            tree, exc, scan = _run(text)
            if exc is None:
                if diags:
                    return None, diags, []
                return tree, [], scan.comments
            diag = _syntax_error(source, text, exc, scan)
        except (LarkError, RecursionError) as e:  # defensive: never let the parser's internals escape
            diag = error("FT001", f"cannot parse this file: {type(e).__name__}", source.span(0, 0))
        if any(d.span == diag.span for d in diags) or (
                diags and diag.span and diags[-1].span and diag.span.line <= diags[-1].span.line + 1):
            return None, diags, []  # most likely a consequence of the error before it
        diags.append(diag)
        if len(diags) >= MAX_ERRORS or len(text) > _MULTI_ERROR_CHARS or diag.code in ("FT003", "FT012"):
            return None, diags, []
        blanked = _blank_line(text, diag.span.line if diag.span else 1)
        if blanked is None or blanked == text:
            return None, diags, []
        text = blanked


def _blank_line(text: str, line: int) -> str | None:
    """The text with one line replaced by spaces, or None when that would unbalance brackets."""
    starts = SourceFile("", text)._line_starts  # noqa: SLF001 - the same index, built in C speed
    if line > len(starts):
        return None
    start = starts[line - 1]
    end = starts[line] - 1 if line < len(starts) else len(text)
    segment = text[start:end]
    code = segment.split("#", 1)[0] if '"' not in segment else segment
    if any(code.count(o) != code.count(c) for o, c in ("{}", "[]", "()")):
        return None
    return text[:start] + " " * len(segment) + text[end:]


def _syntax_error(source: SourceFile, text: str, e: Any, scan: Scan) -> Diagnostic:
    from lark.exceptions import UnexpectedToken

    lark = get_lark()
    if isinstance(e, _BadChar):
        pos = e.pos
        ch = text[pos] if pos < len(text) else ""
        if ch == '"':
            eol = text.find("\n", pos)
            eol = len(text) if eol < 0 else eol
            return error("FT002", "unterminated string", source.span(pos, eol),
                         'close the string with " on the same line (write \\n for a line break inside it)')
        shown = repr(ch) if ch.isprintable() and ch != "" else f"U+{ord(ch):04X}" if ch else "end of file"
        span = source.span(pos, min(pos + 1, len(text)))
        if ch in _HABITS:
            code, hint = _HABITS[ch]
            return error(code, f"invalid character {shown}", span, hint)
        return error("FT004", f"invalid character {shown}", span,
                     _expected_help(lark, e.accepts) + "; other characters belong inside strings or comments")
    if not isinstance(e, UnexpectedToken):
        return error("FT001", "syntax error", source.span(0, 0))
    tok = e.token
    at_end = tok.type == "$END"
    if at_end and scan.open:
        opener = scan.open[-1]
        closer = {"LBRACE": "}", "LSQB": "]", "LPAR": ")"}[opener.type]
        return error("FT003", f"unclosed '{opener}': it is never closed",
                     source.span(opener.start_pos, opener.end_pos),
                     f"add the matching '{closer}'", notes=(f"the file ends at line {source.line_count}",))
    if scan.mismatch is not None and scan.mismatch[0] is tok:
        opener = scan.mismatch[1]
        closer = {"LBRACE": "}", "LSQB": "]", "LPAR": ")"}[opener.type]
        return error("FT003", f"unclosed '{opener}' before '{tok}'", source.span(opener.start_pos, opener.end_pos),
                     f"add the matching '{closer}' before the '{tok}' at line {source.position(tok.start_pos)[0]}")
    if tok.type in _PAIRS and scan.unmatched is tok:
        return error("FT012", f"unmatched '{tok}'", source.span(tok.start_pos, tok.end_pos),
                     "remove it, or add the opening bracket it closes")
    start = len(text) if at_end else tok.start_pos
    end = len(text) if at_end else tok.end_pos
    span = source.span(start, end)
    found = "end of file" if at_end else f"'{_clip(str(tok))}'"
    if scan.open and scan.open[-1].type in ("LPAR", "LSQB"):
        # A '(' or '[' left open on an earlier line is the likeliest cause of an error on a later one.
        opener = scan.open[-1]
        closer = ")" if opener.type == "LPAR" else "]"
        if source.position(opener.start_pos)[0] < span.line and closer in _expected_help(lark, e.expected):
            return error("FT003", f"unclosed '{opener}': expected '{closer}' before {found}",
                         source.span(opener.start_pos, opener.end_pos), f"add the matching '{closer}'",
                         notes=(f"found {found} at {source.path}:{span.line}:{span.column}",))
    label = _label(lark, e)
    try:
        accepts = e.accepts or e.expected
    except Exception:  # noqa: BLE001 - accepts needs the interactive parser; expected is the fallback
        accepts = e.expected
    expected = _expected_help(lark, accepts)
    first_on_line = not at_end and text[text.rfind("\n", 0, start) + 1:start].strip() == ""
    if str(tok).isidentifier() and tok.type != "NAME" and "a name" in expected and not first_on_line:
        expected += f"; `{tok}` is a reserved word: quote it (\"{tok}\") or choose another name"
    if label is not None:
        code, message, hint = label
        return error(code, f"{message}, found {found}", span, f"{hint}; {expected}")
    notes: tuple[str, ...] = ()
    if scan.open and tok.type in ("RECIPE", "MODEL_CARD", "IMPORT", "PARAM"):
        opener = scan.open[-1]
        notes = (f"the '{opener}' at {source.path}:{source.position(opener.start_pos)[0]}:"
                 f"{source.position(opener.start_pos)[1]} is not closed",)
        return error("FT003", f"unexpected {found} inside a block: is a '}}' missing?", span,
                     "close the block before starting a new top-level item", notes=notes)
    return error("FT001", f"unexpected {found}", span, expected)


# Characters other config languages use, with what ftlang writes instead.
_HABITS = {
    ":": ("FT010", "ftlang writes `key = value`, not `key: value`"),
    "'": ("FT004", 'strings use double quotes: "text"'),
    ";": ("FT004", "statements are separated by newlines or ',', not ';'"),
    "`": ("FT004", 'strings use double quotes: "text"'),
}


def _clip(s: str, n: int = 40) -> str:
    s = s.encode("unicode_escape").decode("ascii") if not s.isprintable() else s
    return s if len(s) <= n else s[: n - 1] + "…"


_TERMINAL_WORDS = {
    "NAME": "a name", "STRING": "a string", "INT": "a number", "FLOAT": "a number", "PERCENT": "a number",
    "SIZE": "a number", "$END": "end of file",
}


def _expected_help(lark: Lark, names: Any) -> str:
    words: set[str] = set()
    terms = {t.name: t for t in lark.terminals}
    for name in names or ():
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
        elif name in terms and type(terms[name].pattern).__name__ == "PatternStr":
            words.add(f"'{terms[name].pattern.value}'")
        elif not name.startswith("__"):
            words.add(name.lower())
    operators = {"'<'", "'<='", "'>'", "'>='", "'=='", "'!='", "'+'", "'-'", "'*'", "'/'", "'and'", "'or'"}
    if len(words & operators) >= 3:
        words = (words - operators) | {"an operator"}
    if not words:
        return "check the syntax here"
    ordered = sorted(words, key=lambda w: (w.startswith("'"), w))
    return "expected one of: " + ", ".join(ordered)


# Labelled examples for Lark's match_examples: (code, message, hint) → snippets that fail the same way.
_EXAMPLES: dict[tuple[str, str, str], list[str]] = {
    ("FT010", "missing '=' after key", "write `key = value`"): [
        "recipe r { lr 1 }", "recipe r { train { lr 2e-4 } }", "recipe r { lr \"x\" }",
        "param lr 1", "recipe r { a = 1, b 2 }", "recipe r { a = 1 b 2 }", "recipe r { a { } b 2 }", "model_card m { alias a [x] }",
        "recipe r { data d jsonl(\"x\") }", "recipe r { dataset t d }",
    ],
    ("FT013", "a data source must be a call", 'write e.g. jsonl("data/file.jsonl")'): [
        'recipe r { data d = "x.jsonl" }', "recipe r { data d = 3 }", "recipe r { data d = [a] }",
    ],
    ("FT001", "a dataset stage must be a name or a call", "write e.g. `dataset train = d | dedupe(exact)`"): [
        'recipe r { dataset t = "x" }', "recipe r { dataset t = d | 3 }", 'recipe r { dataset t = d | "x" }',
        "recipe r { dataset t = d | }",
    ],
    ("FT011", "missing value after '='", "give a value: a number, string, name, list or call"): [
        "recipe r { lr = }", "recipe r { a = 1 b = }", "recipe r { a = 1, b = }", "recipe r { lr = , b = 1 }", "param lr =", "recipe r { train { lr = } }",
        "recipe r { x = f(a = ) }", "recipe r { x = f(a = , b = 1) }", "model_card m { alias a = }",
        "recipe r { dataset t = }", "recipe r { data d = }",
    ],
    ("FT014", "expected a statement", "a block holds `key = value`, `name { ... }`, data, dataset, gate, "
                                      "forgetting or alias statements"): [
        "recipe r { 42 }", 'recipe r { "x" }', "recipe r { [a] }", "recipe r { = 1 }", "recipe r { , }",
        "recipe r { train { 1 } }", "recipe r { a = 1,, b = 2 }", "recipe r { ( }", "recipe r { - }",
        "recipe r { true }",
    ],
    ("FT015", "expected `import`, `param`, `recipe` or `model_card` at the top level",
     "start a top-level item here, or move this statement into a recipe"): [
        "foo", "train { }", "x = 1", "42", '"x"', "recipe r { } }", "{", "data d = x", "gate x",
    ],
    ("FT001", "missing name", "name it, e.g. `recipe my_recipe { ... }`"): [
        "recipe { }", "model_card { }", "param = 1", "recipe r extends { }", "recipe r { data = x }",
        "recipe r { dataset = x }", "model_card m { alias = x }", "recipe r { forgetting on }",
    ],
    ("FT001", "missing '{' to open the block", "open the block with '{'"): [
        "recipe r", "recipe r }", "model_card m", "recipe r extends b", "recipe r { train }",
        "recipe r { method lora }", "recipe r { method lora r = 1 }", "recipe r { register \"x\" }",
        "recipe r { train lr = 1 }",
    ],
    ("FT001", "comparisons cannot be chained", "join two comparisons with `and`: `a < b and b < c`"): [
        f"recipe r {{ {stmt} a {op} b < c }}" for stmt in ("gate", "x =") for op in ("<", "<=", ">", ">=", "==", "!=")
    ],
    ("FT001", "unexpected token after a value", "separate statements with a newline or ','"): [
        "recipe r { a = 1 2 }", 'recipe r { a = x "y" }', "recipe r { a = [a b] }", "recipe r { a = f(a b) }",
        "recipe r { a = 1 ) }", "recipe r { a = x ] }", "recipe r { a = 1 < 2 < 3 }",
    ],
    ("FT001", "missing operand", "an operator needs a value on both sides"): [
        "recipe r { gate a < }", "recipe r { gate a and }", "recipe r { gate not }", "recipe r { x = 1 + }",
        "recipe r { gate }", "recipe r { x = a or }", "recipe r { x = (1 }",
    ],
    ("FT001", "expected a list item", "list items are values separated by ','"): [
        "recipe r { x = [,] }", "recipe r { x = [a,,b] }", "recipe r { x = [a = 1] }",
    ],
    ("FT001", "expected an argument", "arguments are values or `key = value`, separated by ','"): [
        "recipe r { x = f(,) }", "recipe r { x = f(a,,b) }",
    ],
    ("FT001", "`forgetting` needs `on NAME`", "write `forgetting on general`"): [
        "recipe r { forgetting x }", "recipe r { forgetting }",
    ],
    ("FT001", "`import` needs a path string", 'write `import "stdlib/models/llama2.ft"`'): [
        "import x", "import", "import 1",
    ],
}


_LABELS: tuple[dict[tuple[int, str], tuple[str, str, str]], dict[int, tuple[str, str, str]]] | None = None


def _label_tables(lark: Lark) -> tuple[dict, dict]:
    """LR state (and token type) → label, from parsing each example once per process.

    Unlike Lark's match_examples this keys on the automaton state alone, not the stack depth, so
    an example written at the top of a recipe also labels the same mistake deep inside a block.
    """
    from lark.exceptions import UnexpectedToken

    global _LABELS
    if _LABELS is None:
        exact: dict[tuple[int, str], tuple[str, str, str]] = {}
        by_state: dict[int, tuple[str, str, str]] = {}
        for label, snippets in _EXAMPLES.items():
            for snippet in snippets:
                _, u, _ = _run(snippet)
                if isinstance(u, UnexpectedToken):  # an example failing in the lexer labels nothing
                    exact.setdefault((u.state.position, u.token.type), label)
                    by_state.setdefault(u.state.position, label)
        _LABELS = (exact, by_state)
    return _LABELS


def _label(lark: Lark, e: Any) -> tuple[str, str, str] | None:
    state = getattr(e, "state", None)
    position = getattr(state, "position", None)
    if position is None:
        return None
    exact, by_state = _label_tables(lark)
    return exact.get((position, e.token.type)) or by_state.get(position)


# ---------------------------------------------------------------------------- lowering to the AST


class _TooDeep(Exception):
    def __init__(self, node: Any) -> None:
        self.node = node


def _bounds(node: Any) -> tuple[int, int]:
    """Start and end offsets of a token or subtree (every rule holds at least one token)."""
    first = last = node
    while not hasattr(first, "start_pos"):
        first = first.children[0]
    while not hasattr(last, "end_pos"):
        last = last.children[-1]
    return first.start_pos, last.end_pos


def _span_of(source: SourceFile, node: Any) -> Span:
    start, end = _bounds(node)
    return source.span(start, end)


_COMPARE_OPS = {"LT": "<", "LE": "<=", "GT": ">", "GE": ">=", "EQ": "==", "NE": "!="}
_ARITH_OPS = {"PLUS": "+", "MINUS": "-", "STAR": "*", "SLASH": "/"}
# token type → precedence, from the one table the formatter and the expression printer also read
_BINARY_PREC = {tok: operators.BINARY[op] for tok, op in {**_COMPARE_OPS, **_ARITH_OPS, "OR": "or",
                                                          "AND": "and"}.items()}
_OPERATORS = frozenset(_BINARY_PREC) | {"NOT"}
_NOT_PREC = operators.NOT
_SIZE_UNITS = {
    "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _span_maker(source: SourceFile) -> Any:
    """source.span without its range clamping: the lowering makes a span for every node."""
    from bisect import bisect_right

    starts = source._line_starts  # noqa: SLF001 - the index SourceFile already built
    path = source.path

    def span_at(start: int, end: int) -> Span:
        line = bisect_right(starts, start)
        end_line = bisect_right(starts, end)
        return Span(path, start, end, line, start - starts[line - 1] + 1, end_line, end - starts[end_line - 1] + 1)

    return span_at


class _ExprError(Exception):
    def __init__(self, diag: Diagnostic) -> None:
        self.diag = diag


class _Lower:
    """Lark tree → AST. Collects diagnostics for what the grammar accepts but the language does not."""

    def __init__(self, source: SourceFile) -> None:
        self.source = source
        self.diags: list[Diagnostic] = []
        self.span_at = _span_maker(source)

    def span(self, node: Any) -> Span:
        start, end = _bounds(node)
        return self.span_at(start, end)

    def tok_span(self, tok: Token) -> Span:
        return self.span_at(tok.start_pos, tok.end_pos)

    # -- top level

    def top(self, t: Tree) -> ast.TopLevel:
        kind = t.data
        c = t.children
        if kind == "import_stmt":
            return ast.Import(self.span(t), self.string(c[1]))
        if kind == "param_stmt":
            return ast.Param(self.span(t), str(c[1]), self.tok_span(c[1]), self.value(c[3], 1))
        if kind == "recipe":
            extends = None
            if len(c) == 4:
                name_tok = c[2].children[1]
                extends = ast.Ident(self.tok_span(name_tok), str(name_tok))
            return ast.Recipe(self.span(t), str(c[1]), self.tok_span(c[1]), extends, self.body(c[-1], 1))
        if kind == "model_card":
            return ast.ModelCard(self.span(t), str(c[1]), self.tok_span(c[1]), self.body(c[-1], 1))
        raise AssertionError(f"unknown top-level rule {kind}")

    def body(self, t: Tree, depth: int) -> tuple[ast.Stmt, ...]:
        if depth > MAX_DEPTH:
            raise _TooDeep(t)
        return tuple(self.stmt(s, depth + 1) for s in t.children if hasattr(s, "data"))

    def stmt(self, t: Tree, depth: int) -> ast.Stmt:
        kind = t.data
        c = t.children
        if kind == "assign":
            return ast.Assign(self.span(t), str(c[0]), self.tok_span(c[0]), self.value(c[2], depth))
        if kind == "block":
            label: ast.Ident | ast.Str | None = None
            if len(c) == 3:
                lab = c[1].children[0]
                label = self.string(lab) if lab.type == "STRING" else ast.Ident(self.tok_span(lab), str(lab))
            return ast.Block(self.span(t), str(c[0]), self.tok_span(c[0]), label, self.body(c[-1], depth))
        if kind == "data_decl":
            source = self.value(c[3], depth)
            assert isinstance(source, (ast.Call, ast.Ident))
            body = self.body(c[4], depth) if len(c) == 5 else None
            return ast.DataDecl(self.span(t), str(c[1]), self.tok_span(c[1]), source, body)
        if kind == "dataset_decl":
            stages = tuple(self.value(s, depth) for s in c[3::2])
            return ast.DatasetDecl(self.span(t), str(c[1]), self.tok_span(c[1]), stages)  # type: ignore[arg-type]
        if kind == "gate":
            return ast.Gate(self.span(t), self.value(c[1], depth))
        if kind == "forgetting":
            return ast.Forgetting(self.span(t), ast.Ident(self.tok_span(c[2]), str(c[2])))
        if kind == "alias_decl":
            return ast.AliasDecl(self.span(t), str(c[1]), self.tok_span(c[1]), self.value(c[3], depth))
        raise AssertionError(f"unknown statement rule {kind}")

    # -- values

    def value(self, node: Any, depth: int) -> ast.Value:
        if depth > MAX_DEPTH:
            raise _TooDeep(node)
        if not hasattr(node, "data"):
            return self.token_value(node)
        kind = node.data
        if kind == "expr":
            try:
                return self.expr(node, depth)
            except _ExprError as e:
                self.diags.append(e.diag)
                return ast.Ident(self.span(node), "<error>")
        if kind == "paren":  # the parentheses carry no meaning; the formatter re-derives them
            return self.value(node.children[1], depth + 1)
        if kind == "list":
            items = node.children[1:-1:2]
            return ast.ListValue(self.span(node), tuple(self.value(i, depth + 1) for i in items))
        if kind == "call":
            return self.call(node, depth)
        raise AssertionError(f"unknown value rule {kind}")

    def token_value(self, tok: Token) -> ast.Value:
        kind = tok.type
        if kind in ("NAME", "FORGETTING"):  # `forgetting` in an expression is the gate verdict
            return ast.Ident(self.tok_span(tok), str(tok))
        if kind == "INT":
            return self.int_(str(tok), self.tok_span(tok))
        if kind == "STRING":
            return self.string(tok)
        if kind == "FLOAT":
            return self.float_(str(tok), self.tok_span(tok))
        if kind == "PERCENT":
            text = str(tok)
            span = self.tok_span(tok)
            return ast.Percent(span, self.float_(text[:-1], span).value / 100, text)
        if kind == "SIZE":
            return self.size(str(tok), self.tok_span(tok))
        if kind in ("TRUE", "FALSE"):
            return ast.Bool(self.tok_span(tok), kind == "TRUE")
        raise AssertionError(f"unknown value token {kind}")

    def call(self, t: Tree, depth: int) -> ast.Call:
        c = t.children
        name = c[0]
        args: list[ast.Value] = []
        kwargs: list[ast.KwArg] = []
        for a in c[2:-1:2]:
            if getattr(a, "data", None) == "kwarg":
                kk = a.children
                kwargs.append(ast.KwArg(self.span(a), str(kk[0]), self.value(kk[2], depth + 2)))
                continue
            v = self.value(a, depth + 1)
            if kwargs:
                self.diags.append(error(
                    "FT009", "positional argument after a keyword argument", v.span,
                    f"move it before `{kwargs[0].name} = ...`, or give it a name"))
            args.append(v)
        return ast.Call(self.span(t), str(name), self.tok_span(name), tuple(args), tuple(kwargs))

    # -- operator precedence over the flat `expr` rule

    def expr(self, t: Tree, depth: int) -> ast.Value:
        items = t.children
        n_ops = sum(1 for i in items if getattr(i, "type", None) in _OPERATORS)
        if depth + n_ops > MAX_DEPTH:
            raise _TooDeep(t)
        base = depth + n_ops
        pos = 0

        def peek() -> Any:
            return items[pos] if pos < len(items) else None

        def binary(min_prec: int, after_not: bool = False) -> ast.Value:
            nonlocal pos
            left = unary(min_prec, after_not)
            compared = False
            while True:
                op = peek()
                prec = _BINARY_PREC.get(getattr(op, "type", ""), 0)
                if op is None or prec < min_prec:
                    return left
                if prec == operators.COMPARE and compared:
                    raise _ExprError(error(
                        "FT001", "comparisons cannot be chained", self.tok_span(op),
                        "join two comparisons with `and`: `a < b and b < c`"))
                pos += 1
                right = binary(prec + 1)
                span = left.span.merge(right.span)
                if op.type in ("OR", "AND"):
                    left = ast.BoolOp(span, op.type.lower(), left, right)
                elif op.type in _COMPARE_OPS:
                    left = ast.Compare(span, _COMPARE_OPS[op.type], left, right)
                    compared = True
                else:
                    left = ast.Arith(span, _ARITH_OPS[op.type], left, right)

        def unary(min_prec: int, after_not: bool = False) -> ast.Value:
            nonlocal pos
            tok = peek()
            kind = getattr(tok, "type", None)
            if kind == "NOT":
                if min_prec > _NOT_PREC and not after_not:  # `not not x` is fine, `a < not b` is not
                    raise _ExprError(error(
                        "FT001", "`not` needs parentheses here", self.tok_span(tok),
                        "write the negated part in parentheses, e.g. `a == (not b)`"))
                pos += 1
                operand = binary(_NOT_PREC + 1, after_not=True)
                return ast.Not(self.tok_span(tok).merge(operand.span), operand)
            if kind == "MINUS":
                pos += 1
                operand = unary(operators.UNARY_MINUS)
                return self.negate(operand, self.tok_span(tok).merge(operand.span))
            pos += 1
            return self.value(tok, base + 1)

        return binary(0)

    @staticmethod
    def negate(v: ast.Value, span: Span) -> ast.Value:
        """`-2e-4` is one literal, not Neg(2e-4): the checker sees numbers, the formatter keeps the text."""
        def flip(text: str) -> str:
            return text[1:] if text.startswith("-") else "-" + text

        if isinstance(v, ast.Int):
            return ast.Int(span, -v.value, flip(v.text))
        if isinstance(v, ast.Float):
            return ast.Float(span, -v.value, flip(v.text))
        if isinstance(v, ast.Percent):
            return ast.Percent(span, -v.value, flip(v.text))
        if isinstance(v, ast.Size):
            return ast.Size(span, -v.value, flip(v.text))
        return ast.Neg(span, v)

    # -- literals

    def string(self, tok: Token) -> ast.Str:
        span = self.tok_span(tok)
        raw = str(tok)[1:-1]
        if "\\" not in raw:
            return ast.Str(span, raw)
        out: list[str] = []
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            nxt = raw[i + 1]  # the grammar guarantees a character after every backslash
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u":
                code, used = self.unicode_escape(raw, i)
                if code is not None:
                    out.append(chr(code))
                    i += used
                    continue
                bad_end = i + 2 + len(raw[i + 2: i + 6])
            else:
                bad_end = i + 2
            off = tok.start_pos + 1
            self.diags.append(error("FT005", f"invalid escape '{_clip(raw[i:bad_end])}' in a string",
                                    self.span_at(off + i, off + bad_end),
                                    "use \\\" \\\\ \\n \\t \\r or \\uXXXX (4 hex digits); "
                                    "write a backslash as \\\\"))
            i = bad_end
        return ast.Str(span, "".join(out))

    @staticmethod
    def unicode_escape(raw: str, i: int) -> tuple[int | None, int]:
        """Decode \\uXXXX at raw[i] (joining a surrogate pair); (None, 0) when invalid."""
        def hex4(j: int) -> int | None:
            h = raw[j: j + 4]
            if len(h) == 4 and all(c in "0123456789abcdefABCDEF" for c in h):
                return int(h, 16)
            return None

        hi = hex4(i + 2)
        if hi is None:
            return None, 0
        if 0xD800 <= hi < 0xDC00 and raw[i + 6: i + 8] == "\\u":
            lo = hex4(i + 8)
            if lo is not None and 0xDC00 <= lo < 0xE000:
                return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12
        if 0xD800 <= hi < 0xE000:
            return None, 0  # a lone surrogate cannot be written out as UTF-8
        return hi, 6

    def int_(self, text: str, span: Span) -> ast.Int:
        if len(text) > _MAX_DIGITS:
            self.diags.append(error("FT006", f"number with {len(text)} digits is out of range", span,
                                    f"numbers may have at most {_MAX_DIGITS} digits"))
            return ast.Int(span, 0, text)
        return ast.Int(span, int(text), text)

    def float_(self, text: str, span: Span) -> ast.Float:
        value = math.inf if len(text) > _MAX_DIGITS else float(text)
        if math.isinf(value):
            self.diags.append(error("FT006", f"number {_clip(text)} is out of range", span,
                                    "use a number below 1.8e308"))
            value = 0.0
        return ast.Float(span, value, text)

    def size(self, text: str, span: Span) -> ast.Size:
        unit = text.lstrip("0123456789.")
        number = text[: len(text) - len(unit)]
        if len(number) > _MAX_DIGITS:
            self.diags.append(error("FT006", "size out of range", span, "use a smaller number or a larger unit"))
            return ast.Size(span, 0, text)
        try:
            value = int(Decimal(number) * _SIZE_UNITS[unit])
        except (InvalidOperation, ValueError):  # pragma: no cover - the token regex admits only digits
            value = 0
        return ast.Size(span, value, text)
