"""The canonical layout of .ft files (`ftlang fmt`).

    format_source(source) -> (text | None, diagnostics)   None when the file has syntax errors
    format_text(text, path="<string>") -> (text | None, diagnostics)
    shape(node) -> a span-free nested tuple: two files mean the same iff their shapes are equal

Layout: 2-space indent; one statement per line in a block; a block, or a dataset pipeline, that
was written on one line stays on one line when it holds no comment and fits in 100 columns;
lists and calls break one item per line only when they do not fit (or hold a comment). Keys are
not aligned. At most one blank line is kept where the author left one; recipes and model cards
are set apart by a blank line. Every comment is kept: trailing comments stay after the code of
their line (two spaces before the '#'), own-line comments stay above what follows them.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from typing import Any

from ftlang import operators
from ftlang.diagnostics import Diagnostic, error
from ftlang.source import SourceFile
from ftlang.syntax import ast
from ftlang.syntax.parser import parse

WIDTH = 100
INDENT = 2
_BLANK = re.compile(r"\n[ \t\r\f\v]*\n")
_SPAN_FIELDS = frozenset({"span", "name_span", "key_span", "kind_span"})


def format_text(text: str, path: str = "<string>") -> tuple[str | None, list[Diagnostic]]:
    return format_source(SourceFile(path, text))


def format_source(source: SourceFile) -> tuple[str | None, list[Diagnostic]]:
    module, diags = parse(source)
    if module is None:
        return None, diags
    out = _Printer(source, module).module()
    # A safety net: a formatter bug must never silently change what a recipe means.
    again, _ = parse(SourceFile(source.path, out))
    if again is None or shape(again.items) != shape(module.items) or \
            [c.text for c in again.comments] != [c.text for c in module.comments]:
        return None, [error("FT018", "the formatter could not lay out this file without changing it",
                            source.span(0, 0), "the file is left as it is; please report this as a bug")]
    return out, []


def shape(node: Any) -> Any:
    """The node without positions, as nested tuples; equal shapes mean the same recipe."""
    if isinstance(node, tuple):
        return tuple(shape(n) for n in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        fields = [(f.name, shape(getattr(node, f.name))) for f in dataclasses.fields(node)
                  if f.name not in _SPAN_FIELDS and f.name != "path"]
        return (type(node).__name__, tuple(fields))
    return node


_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f-\x9f]*')


def quote(value: str) -> str:
    """A string literal for `value` that the parser reads back as exactly `value`."""
    if _PLAIN.fullmatch(value) and value.isprintable():
        return f'"{value}"'
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable() or 0xD800 <= ord(ch) < 0xE000:
            out.append(ch)
        elif ord(ch) > 0xFFFF:
            code = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------------------- expressions (one line)

def _prec(v: ast.Value) -> int:
    if isinstance(v, (ast.BoolOp, ast.Compare, ast.Arith)):
        return operators.BINARY[v.op]
    if isinstance(v, ast.Not):
        return operators.NOT
    if isinstance(v, ast.Neg):
        return operators.UNARY_MINUS
    if isinstance(v, (ast.Int, ast.Float, ast.Percent, ast.Size)) and v.text.startswith("-"):
        return operators.UNARY_MINUS
    return operators.ATOM


def inline(v: ast.Value) -> str:
    if isinstance(v, ast.Str):
        return quote(v.value)
    if isinstance(v, (ast.Int, ast.Float, ast.Percent, ast.Size)):
        return v.text
    if isinstance(v, ast.Bool):
        return "true" if v.value else "false"
    if isinstance(v, ast.Ident):
        return v.name
    if isinstance(v, ast.ListValue):
        return "[" + ", ".join(inline(i) for i in v.items) + "]"
    if isinstance(v, ast.Call):
        parts = [inline(a) for a in v.args] + [f"{k.name} = {inline(k.value)}" for k in v.kwargs]
        return f"{v.name}({', '.join(parts)})"
    if isinstance(v, (ast.BoolOp, ast.Arith)):
        p = operators.BINARY[v.op]
        return f"{_wrap(v.left, p)} {v.op} {_wrap(v.right, p + 1)}"
    if isinstance(v, ast.Not):
        return f"not {_wrap(v.operand, operators.NOT)}"
    if isinstance(v, ast.Compare):  # comparisons do not chain: a comparison operand is parenthesized
        return f"{_wrap(v.left, operators.COMPARE + 1)} {v.op} {_wrap(v.right, operators.COMPARE + 1)}"
    if isinstance(v, ast.Neg):
        return f"-{_wrap(v.operand, operators.UNARY_MINUS)}"
    raise TypeError(f"cannot format {type(v).__name__}")


def _wrap(v: ast.Value, at_least: int) -> str:
    return operators.wrap(inline(v), _prec(v), at_least)


def _inline_stmt(s: ast.Stmt) -> str:
    if isinstance(s, ast.Assign):
        return f"{s.key} = {inline(s.value)}"
    if isinstance(s, ast.Gate):
        return f"gate {inline(s.expr)}"
    if isinstance(s, ast.Forgetting):
        return f"forgetting on {s.target.name}"
    if isinstance(s, ast.AliasDecl):
        return f"alias {s.name} = {inline(s.value)}"
    if isinstance(s, ast.DatasetDecl):
        return f"dataset {s.name} = " + " | ".join(inline(st) for st in s.stages)
    if isinstance(s, ast.DataDecl):
        head = f"data {s.name} = {inline(s.source)}"
        return head if s.body is None else head + " " + _inline_body(s.body)
    if isinstance(s, ast.Block):
        return _block_header(s) + " " + _inline_body(s.body)
    raise TypeError(f"cannot format {type(s).__name__}")


def _inline_body(body: tuple[ast.Stmt, ...]) -> str:
    if not body:
        return "{ }"
    return "{ " + ", ".join(_inline_stmt(s) for s in body) + " }"


def _block_header(b: ast.Block) -> str:
    if b.label is None:
        return b.kind
    label = quote(b.label.value) if isinstance(b.label, ast.Str) else b.label.name
    return f"{b.kind} {label}"


# ---------------------------------------------------------------------------- the printer


class _Printer:
    """Emits lines in source order and threads every comment into them."""

    def __init__(self, source: SourceFile, module: ast.Module) -> None:
        self.source = source
        self.text = source.text
        self.comments = sorted(module.comments, key=lambda c: c.span.start)
        self.starts = [c.span.start for c in self.comments]
        self.next = 0  # index of the first comment not yet printed
        self.module_node = module
        self.out: list[str] = []
        self.last_end = 0
        self.force_blank = False
        self.no_blank = True  # at the start of the file or of a block body

    # -- comment plumbing

    def has_comment(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self.starts, start)
        return i < len(self.starts) and self.starts[i] < end

    def line(self, indent: int, text: str, src_start: int, src_end: int, *, blank_ok: bool = True) -> None:
        if self.out and not self.no_blank and (self.force_blank or (
                blank_ok and _BLANK.search(self.text, self.last_end, max(self.last_end, src_start)))):
            self.out.append("")
        self.force_blank = False
        self.no_blank = False
        self.out.append(" " * indent + text)
        self.last_end = max(self.last_end, src_end)
        self.trailing(src_end)

    def trailing(self, src_end: int) -> None:
        if self.next >= len(self.comments):
            return
        c = self.comments[self.next]
        between = self.text[src_end:c.span.start] if c.span.start >= src_end else "#"
        if c.trailing and between.strip(" \t\r\f\v,") == "":
            self.out[-1] = self.out[-1].rstrip() + "  " + c.text.rstrip()
            self.next += 1
            self.last_end = max(self.last_end, c.span.end)

    def leading(self, before: int, indent: int) -> None:
        while self.next < len(self.comments) and self.comments[self.next].span.start < before:
            c = self.comments[self.next]
            self.next += 1
            self.line(indent, c.text.rstrip(), c.span.start, c.span.end)

    def find(self, char: str, pos: int) -> int:
        """Offset of the next `char` at or after pos, skipping whitespace and comments."""
        i = pos
        n = len(self.text)
        while i < n:
            ch = self.text[i]
            if ch == char:
                return i
            if ch == "#":
                nl = self.text.find("\n", i)
                i = n if nl < 0 else nl
            else:
                i += 1
        return pos

    # -- top level

    def module(self) -> str:
        for item in self.module_node.items:
            spaced = isinstance(item, (ast.Recipe, ast.ModelCard))
            if spaced:
                self.force_blank = True
            self.leading(item.span.start, 0)
            self.top(item)
            if spaced:
                self.force_blank = True
        self.force_blank = False
        self.leading(len(self.text) + 1, 0)
        return "\n".join(self.out) + "\n" if self.out else ""

    def top(self, item: ast.TopLevel) -> None:
        if isinstance(item, ast.Import):
            self.line(0, f"import {quote(item.path.value)}", item.span.start, item.span.end)
        elif isinstance(item, ast.Param):
            self.value(f"param {item.name} = ", item.value, 0, item.span.start)
        elif isinstance(item, ast.Recipe):
            head = f"recipe {item.name}" + (f" extends {item.extends.name}" if item.extends else "")
            after = item.extends.span.end if item.extends else item.name_span.end
            self.block(head, item.body, 0, item.span, after)
        elif isinstance(item, ast.ModelCard):
            self.block(f"model_card {item.name}", item.body, 0, item.span, item.name_span.end)

    # -- statements

    def block(self, head: str, body: tuple[ast.Stmt, ...], indent: int, span: Any, after: int,
              src_start: int | None = None) -> None:
        start = span.start if src_start is None else src_start
        quiet = not self.has_comment(span.start, span.end)
        if quiet and (not body or span.line == span.end_line):
            text = f"{head} {_inline_body(body)}"
            if not body or indent + len(text) <= WIDTH:
                self.line(indent, text, start, span.end)
                return
        brace = self.find("{", after)
        self.line(indent, head + " {", start, brace + 1)
        self.no_blank = True
        for s in body:
            self.stmt(s, indent + INDENT)
        self.leading(span.end - 1, indent + INDENT)
        self.no_blank = False
        self.line(indent, "}", span.end - 1, span.end, blank_ok=False)

    def stmt(self, s: ast.Stmt, indent: int) -> None:
        self.leading(s.span.start, indent)
        if isinstance(s, ast.Assign):
            self.value(f"{s.key} = ", s.value, indent, s.span.start)
        elif isinstance(s, ast.Gate):
            self.value("gate ", s.expr, indent, s.span.start)
        elif isinstance(s, ast.AliasDecl):
            self.value(f"alias {s.name} = ", s.value, indent, s.span.start)
        elif isinstance(s, ast.Forgetting):
            self.line(indent, f"forgetting on {s.target.name}", s.span.start, s.span.end)
        elif isinstance(s, ast.Block):
            after = s.label.span.end if s.label is not None else s.kind_span.end
            self.block(_block_header(s), s.body, indent, s.span, after)
        elif isinstance(s, ast.DataDecl):
            head = f"data {s.name} = {inline(s.source)}"
            if s.body is None:
                self.value(f"data {s.name} = ", s.source, indent, s.span.start)
            else:
                self.block(head, s.body, indent, s.span, s.source.span.end)
        elif isinstance(s, ast.DatasetDecl):
            self.pipeline(s, indent)

    def pipeline(self, s: ast.DatasetDecl, indent: int) -> None:
        one = _inline_stmt(s)
        if s.span.line == s.span.end_line and not self.has_comment(s.span.start, s.span.end) \
                and indent + len(one) <= WIDTH:
            self.line(indent, one, s.span.start, s.span.end)
            return
        first, *rest = s.stages
        self.value(f"dataset {s.name} = ", first, indent, s.span.start)
        for stage in rest:
            self.leading(stage.span.start, indent + INDENT)
            self.value("| ", stage, indent + INDENT, stage.span.start)

    # -- values that may break over lines

    def value(self, head: str, v: ast.Value, indent: int, src_start: int, tail: str = "") -> None:
        text = inline(v)
        quiet = not self.has_comment(v.span.start, v.span.end)
        if quiet and indent + len(head) + len(text) + len(tail) <= WIDTH:
            self.line(indent, head + text + tail, src_start, v.span.end)
            return
        if isinstance(v, ast.ListValue) and v.items:
            self.line(indent, head + "[", src_start, v.span.start + 1)
            self.no_blank = True
            for item in v.items:
                self.leading(item.span.start, indent + INDENT)
                self.value("", item, indent + INDENT, item.span.start, ",")
        elif isinstance(v, ast.Call) and (v.args or v.kwargs):
            paren = self.find("(", v.name_span.end)
            self.line(indent, f"{head}{v.name}(", src_start, paren + 1)
            self.no_blank = True
            for arg in v.args:
                self.leading(arg.span.start, indent + INDENT)
                self.value("", arg, indent + INDENT, arg.span.start, ",")
            for kw in v.kwargs:
                self.leading(kw.span.start, indent + INDENT)
                self.value(f"{kw.name} = ", kw.value, indent + INDENT, kw.span.start, ",")
        else:
            self.line(indent, head + text + tail, src_start, v.span.end)
            return
        self.no_blank = True  # no blank line may open the closing bracket's line
        self.leading(v.span.end - 1, indent + INDENT)
        self.no_blank = False
        closer = "]" if isinstance(v, ast.ListValue) else ")"
        self.line(indent, closer + tail, v.span.end - 1, v.span.end, blank_ok=False)
