"""The ftlang syntax tree: frozen dataclasses, every node with the Span it came from.

The tree is deliberately generic: a recipe body is a list of statements (assignments, blocks,
declarations, gates); the per-block meaning lives in semantic/schema.py, not in node types.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftlang.source import Span


@dataclass(frozen=True)
class Node:
    span: Span


# ---------------------------------------------------------------------------- values & expressions


@dataclass(frozen=True)
class Str(Node):
    value: str


@dataclass(frozen=True)
class Int(Node):
    value: int
    text: str  # as written, for fmt ("1_000", "0x10" are not allowed; "1000" is)


@dataclass(frozen=True)
class Float(Node):
    value: float
    text: str  # as written: "2e-4", "0.05"


@dataclass(frozen=True)
class Percent(Node):
    value: float  # the fraction: 10% → 0.10
    text: str  # as written: "10%"


@dataclass(frozen=True)
class Size(Node):
    value: int  # bytes: 24GB → 24 * 10**9, 512MiB → 512 * 2**20
    text: str  # as written: "24GB"


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Ident(Node):
    name: str


@dataclass(frozen=True)
class ListValue(Node):
    items: tuple[Value, ...]


@dataclass(frozen=True)
class KwArg(Node):
    name: str
    value: Value


@dataclass(frozen=True)
class Call(Node):
    """`name(arg, key = value)`: sources (jsonl(...)), steps (dedupe(exact)), skip(max = 1%), len(x)."""

    name: str
    name_span: Span
    args: tuple[Value, ...]
    kwargs: tuple[KwArg, ...]

    def kwarg(self, name: str) -> KwArg | None:
        return next((k for k in self.kwargs if k.name == name), None)


@dataclass(frozen=True)
class Compare(Node):
    op: str  # "<", "<=", ">", ">=", "==", "!="
    left: Value
    right: Value


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    left: Value
    right: Value


@dataclass(frozen=True)
class Not(Node):
    operand: Value


@dataclass(frozen=True)
class Arith(Node):
    op: str  # "+", "-", "*", "/"
    left: Value
    right: Value


@dataclass(frozen=True)
class Neg(Node):
    operand: Value


Value = Str | Int | Float | Percent | Size | Bool | Ident | ListValue | Call | Compare | BoolOp | Not | Arith | Neg

# ---------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class Assign(Node):
    """`key = value` inside a block."""

    key: str
    key_span: Span
    value: Value


@dataclass(frozen=True)
class Block(Node):
    """`kind [label] { body }`: train { }, method lora { }, register "name" { }, split train { }, quant { }."""

    kind: str
    kind_span: Span
    label: Ident | Str | None
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class DataDecl(Node):
    """`data NAME = source(...) [{ body }]`."""

    name: str
    name_span: Span
    source: Call | Ident  # an Ident only for an (invalid) bare name; the checker reports it
    body: tuple[Stmt, ...] | None


@dataclass(frozen=True)
class DatasetDecl(Node):
    """`dataset NAME = first | step | step(...)`: stages[0] names a data source or dataset."""

    name: str
    name_span: Span
    stages: tuple[Ident | Call, ...]


@dataclass(frozen=True)
class Gate(Node):
    """`gate EXPR` inside eval."""

    expr: Value


@dataclass(frozen=True)
class Forgetting(Node):
    """`forgetting on NAME` inside eval: compare base vs tuned perplexity on that data/dataset."""

    target: Ident


@dataclass(frozen=True)
class AliasDecl(Node):
    """`alias NAME = value` inside model_card."""

    name: str
    name_span: Span
    value: Value


Stmt = Assign | Block | DataDecl | DatasetDecl | Gate | Forgetting | AliasDecl

# ---------------------------------------------------------------------------- top level


@dataclass(frozen=True)
class Import(Node):
    path: Str


@dataclass(frozen=True)
class Param(Node):
    name: str
    name_span: Span
    value: Value


@dataclass(frozen=True)
class Recipe(Node):
    name: str
    name_span: Span
    extends: Ident | None
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class ModelCard(Node):
    name: str
    name_span: Span
    body: tuple[Stmt, ...]


TopLevel = Import | Param | Recipe | ModelCard


@dataclass(frozen=True)
class Comment(Node):
    text: str  # including the leading "#"
    trailing: bool  # True when code precedes it on the same line


@dataclass(frozen=True)
class Module(Node):
    """One parsed .ft file."""

    path: str
    items: tuple[TopLevel, ...]
    comments: tuple[Comment, ...]
