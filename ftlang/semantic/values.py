"""The type checker: AST values → Python values, driven by schema.KeySchema; blocks → TypedBlock.

Identifiers used as values name params (`lr = lr`); enum keys accept their words first.
Every problem becomes a positioned Diagnostic; checking continues with the next key.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from ftlang.diagnostics import Diagnostic, error
from ftlang.semantic import aliases
from ftlang.semantic.schema import BlockSchema, KeySchema
from ftlang.source import Span
from ftlang.syntax import ast


class Problem(Exception):
    def __init__(self, diag: Diagnostic):
        self.diag = diag


def did_you_mean(name: str, options) -> str | None:
    options = list(options)
    folded = {o.lower(): o for o in options}
    if name.lower() in folded:  # `LoRA` for `lora`
        return folded[name.lower()]
    # another tool's spelling (`cutoff_len`, `output_proj`) before the closest spelling
    foreign = aliases.guess(name, options)
    if foreign is not None:
        return foreign
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return match[0] if match else None


def describe(node: ast.Value) -> str:
    return {
        ast.Str: "a string", ast.Int: "an integer", ast.Float: "a number", ast.Percent: "a percentage",
        ast.Size: "a size", ast.Bool: "a boolean", ast.Ident: "a name", ast.ListValue: "a list",
        ast.Call: "a call",
    }.get(type(node), "an expression")


@dataclass
class Field:
    value: Any
    node: ast.Value
    key_span: Span


@dataclass
class TypedBlock:
    schema: BlockSchema
    span: Span
    label: ast.Ident | ast.Str | None = None
    values: dict[str, Field] = field(default_factory=dict)
    blocks: dict[str, TypedBlock] = field(default_factory=dict)
    statements: list[ast.Stmt] = field(default_factory=list)  # gates, forgetting, data, dataset, alias

    def get(self, key: str, default: Any = None) -> Any:
        f = self.values.get(key)
        if f is not None:
            return f.value
        ks = self.schema.key(key)
        if default is None and ks is not None:
            return ks.default
        return default

    def has(self, key: str) -> bool:
        return key in self.values

    def span_of(self, key: str) -> Span:
        f = self.values.get(key)
        return f.node.span if f is not None else self.span

    def plan_kwargs(self, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """plan field → value for every key written here that fills one plan field as typed (the keys a
        binder interprets itself, `special` ones and those in `skip`, are left to it)."""
        return {ks.field: self.values[ks.name].value for ks in self.schema.keys
                if ks.field and ks.type != "special" and ks.name in self.values and ks.name not in skip}


Params = dict[str, ast.Value]


def _number(node: ast.Value) -> float | int | None:
    if isinstance(node, (ast.Int, ast.Float)):
        return node.value
    if isinstance(node, ast.Neg) and isinstance(node.operand, (ast.Int, ast.Float)):
        return -node.operand.value
    return None


def _deref(node: ast.Value, params: Params) -> ast.Value:
    if isinstance(node, ast.Ident):
        if node.name in params:
            return params[node.name]
        raise Problem(error("FT201", f"undefined name `{node.name}`", node.span,
                            _hint(node.name, params, "declare it with `param NAME = value`, or write a literal")))
    return node


def _hint(name: str, options, fallback: str) -> str:
    guess = did_you_mean(name, options)
    return f"did you mean `{guess}`?" if guess else fallback


def _type_error(ks: KeySchema, node: ast.Value, expected: str) -> Problem:
    return Problem(error("FT102", f"`{ks.name}` expects {expected}, found {describe(node)}", node.span,
                         f"{ks.name}: {ks.doc}"))


_INT_LIMIT = 2**63 - 1  # what torch, numpy and the plan's JSON readers hold; float() overflows long after


def _check_range(ks: KeySchema, value: float, span: Span) -> None:
    # before any conversion: float(10**400) raises OverflowError, and so does formatting it with :g
    if isinstance(value, int) and abs(value) > _INT_LIMIT:
        raise Problem(error("FT103", f"`{ks.name}` is out of range: a {value.bit_length()}-bit number", span,
                            f"`{ks.name}` must satisfy {ks.range_text()} (and fit in 64 bits)"))
    if isinstance(value, float) and not math.isfinite(value):  # `--set lr=1e999` spells inf
        raise Problem(error("FT103", f"`{ks.name} = {value}` is out of range", span,
                            f"`{ks.name}` must be a finite number satisfying {ks.range_text()}"))
    lo_bad = ks.min is not None and (value <= ks.min if ks.min_open else value < ks.min)
    hi_bad = ks.max is not None and (value >= ks.max if ks.max_open else value > ks.max)
    if lo_bad or hi_bad:
        raise Problem(error("FT103", f"`{ks.name} = {value:g}` is out of range", span,
                            f"`{ks.name}` must satisfy {ks.range_text()}"))


def _enum_word(ks: KeySchema, node: ast.Value, params: Params) -> str:
    if isinstance(node, (ast.Ident, ast.Str)):
        word = node.name if isinstance(node, ast.Ident) else node.value
        if word in ks.enum:
            return word
        if isinstance(node, ast.Ident) and word in params:
            target = params[word]
            if isinstance(target, ast.Str) and target.value in ks.enum:
                return target.value
        guess = did_you_mean(word, ks.enum)
        hint = f"did you mean `{guess}`? " if guess else ""
        raise Problem(error("FT104", f"`{word}` is not a valid `{ks.name}`", node.span,
                            f"{hint}expected one of: {', '.join(ks.enum)}"))
    raise _type_error(ks, node, f"one of {', '.join(ks.enum)}")


def convert(node: ast.Value, ks: KeySchema, params: Params) -> Any:
    """One value, typed by its key; raises Problem with a positioned diagnostic (at the use, also when
    the bad value comes from a param or a --set)."""
    try:
        return _convert(node, ks, params)
    except Problem as p:
        s, u = p.diag.span, node.span
        if s is not None and (s.file != u.file or not u.start <= s.start <= u.end):
            from dataclasses import replace

            name = node.name if isinstance(node, ast.Ident) else "?"
            raise Problem(replace(p.diag, span=u, notes=(*p.diag.notes, f"the value comes from param `{name}` "
                                                         f"({s.file}:{s.line}:{s.column}) or its --set"))) from None
        raise


def _convert(node: ast.Value, ks: KeySchema, params: Params) -> Any:
    # long: one short branch per key type; a table of small functions would scatter the shared checks
    t = ks.type
    if t == "special":
        return node
    if t == "enum":
        return _enum_word(ks, node, params)
    if t == "enum_list":
        items = node.items if isinstance(node, ast.ListValue) else (node,)
        return [_enum_word(ks, it, params) for it in items]
    if t == "ident_list":
        items = node.items if isinstance(node, ast.ListValue) else (node,)
        out = []
        for it in items:
            if isinstance(it, ast.Ident):
                out.append(it.name)
            elif isinstance(it, ast.Str):
                out.append(it.value)
            elif isinstance(it, ast.Arith) and isinstance(it.left, ast.Ident) and isinstance(it.right, ast.Ident) \
                    and it.op == "-" and aliases.lookup(f"{it.left.name}-{it.right.name}"):
                name = f"{it.left.name}-{it.right.name}"  # PEFT's `all-linear` reads as a subtraction here
                raise Problem(error("FT102", f"`{name}` is not a module name", it.span, aliases.fix(name)))
            else:
                raise _type_error(ks, it, "module names or aliases")
        return out
    if t == "every" and isinstance(node, ast.Ident) and node.name in ("epoch", "end"):
        return node.name
    if t == "name":
        if isinstance(node, ast.Ident):
            return node.name
        if isinstance(node, ast.Str):
            return node.value
        raise _type_error(ks, node, "a name")
    use_span = node.span
    node = _deref(node, params)
    if t == "int":
        if not isinstance(node, (ast.Int, ast.Neg)) or not isinstance(_number(node), int):
            raise _type_error(ks, node, "an integer")
        v = _number(node)
        _check_range(ks, v, use_span)
        return v
    if t == "number":
        v = _number(node)
        if v is None:
            raise _type_error(ks, node, "a number")
        _check_range(ks, v, use_span)
        return v
    if t == "fraction":
        v = node.value if isinstance(node, ast.Percent) else _number(node)
        if v is None:
            raise _type_error(ks, node, "a percentage or a number")
        _check_range(ks, v, use_span)
        return v
    if t == "bool":
        if not isinstance(node, ast.Bool):
            raise _type_error(ks, node, "true or false")
        return node.value
    if t == "str":
        if not isinstance(node, ast.Str):
            raise _type_error(ks, node, "a string")
        return node.value
    if t == "size":
        if isinstance(node, ast.Int):  # `memory = 24` would be 24 bytes: the unit is missing, not implied
            raise Problem(error("FT102", f"`{ks.name} = {node.text}` has no unit", node.span,
                                f"write the unit: {node.text}GiB (GPU memory, 2^30 bytes) or {node.text}GB "
                                "(10^9 bytes); units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"))
        if not isinstance(node, ast.Size):
            raise _type_error(ks, node, "a size such as 24GiB")
        v = node.value
        _check_range(ks, v, use_span)
        return v
    if t == "steps_or_ratio":
        if isinstance(node, ast.Percent):
            v = node.value
            if not 0 <= v < 1:
                raise Problem(error("FT103", f"`{ks.name} = {node.text}` is out of range", use_span,
                                    "a warmup ratio is below 100%"))
            return ("ratio", v)
        if isinstance(node, ast.Int) and node.value >= 0:
            return ("steps", node.value)
        if isinstance(node, ast.Float) and 0 <= node.value < 1:
            return ("ratio", node.value)
        raise _type_error(ks, node, "a percentage (3%) or a number of steps (100)")
    if t == "every":
        if isinstance(node, ast.Int) and node.value >= 1:
            return node.value
        fraction = node.value if isinstance(node, (ast.Percent, ast.Float)) else None
        if fraction is not None and 0 < fraction < 1:
            return fraction  # a fraction of an epoch
        raise _type_error(ks, node, "epoch, end, a number of steps or a fraction of an epoch (0.25 or 25%)")
    raise Problem(error("FT998", f"`{ks.name}` has an unknown type {t}", use_span))


def check_block(body: tuple[ast.Stmt, ...], schema: BlockSchema, span: Span, params: Params,
                diags: list[Diagnostic], label: ast.Ident | ast.Str | None = None,
                nested: dict[str, BlockSchema] | None = None) -> TypedBlock:
    """Type every `key = value` of a block; unknown keys get a did-you-mean. Nested blocks recurse."""
    from ftlang.semantic.schema import block as block_schema

    tb = TypedBlock(schema, span, label)
    written: set[str] = set()  # keys set with a bad value: reported there, not again as missing
    for st in body:
        if isinstance(st, ast.Assign):
            ks = schema.key(st.key)
            if ks is None:
                diags.append(_unknown_key(st.key, st.key_span, schema))
                continue
            written.add(st.key)
            if st.key in tb.values:
                diags.append(error("FT107", f"`{st.key}` is set twice in this block", st.key_span,
                                   "remove one of the two settings"))
                continue
            try:
                tb.values[st.key] = Field(convert(st.value, ks, params), st.value, st.key_span)
            except Problem as p:
                diags.append(p.diag)
        elif isinstance(st, ast.Block):
            sub = (nested or {}).get(st.kind) or (block_schema(st.kind) if st.kind in schema.blocks else None)
            if sub is None:
                diags.append(_unknown_block(st.kind, st.kind_span, schema))
                continue
            if st.kind in tb.blocks:
                diags.append(error("FT107", f"`{st.kind}` block appears twice here", st.kind_span,
                                   "merge the two blocks into one"))
                continue
            tb.blocks[st.kind] = check_block(st.body, sub, st.span, params, diags, st.label)
        else:
            kind = {ast.Gate: "gate", ast.Forgetting: "forgetting", ast.DataDecl: "data",
                    ast.DatasetDecl: "dataset", ast.AliasDecl: "alias"}.get(type(st), "?")
            if kind in schema.statements:
                tb.statements.append(st)
            else:
                diags.append(error("FT106", f"`{kind}` is not allowed in {_where(schema)}", st.span,
                                   f"{kind} belongs in {_home(kind)}"))
    for ks in schema.keys:
        if ks.required and ks.name not in tb.values and ks.name not in written and ks.type != "special":
            diags.append(error("FT105", f"{_where(schema)} needs `{ks.name}`", span,
                               f"add `{ks.name} = ...`: {ks.doc}"))
    return tb


def _where(schema: BlockSchema) -> str:
    name = schema.name.replace("method.", "method ")
    return f"a `{name}` block" if schema.name != "recipe" else "a recipe"


def _home(kind: str) -> str:
    return {"gate": "an eval block", "forgetting": "an eval block", "data": "a recipe",
            "dataset": "a recipe", "alias": "a model_card"}.get(kind, "another block")


def _unknown_key(key: str, span: Span, schema: BlockSchema) -> Diagnostic:
    options = schema.key_names + list(schema.blocks)
    guess = did_you_mean(key, options)
    msg = f"unknown key `{key}` in {_where(schema)}"
    foreign = aliases.lookup(key)
    if foreign is not None and (foreign.fix or guess == foreign.to):  # another tool's key: say how to migrate it
        return error("FT101", f"{msg}: did you mean `{guess}`?" if guess else msg, span, foreign.help())
    if guess:
        return error("FT101", f"{msg}: did you mean `{guess}`?", span, f"replace `{key}` with `{guess}`")
    if foreign is not None:  # a rename that belongs in another block
        return error("FT101", msg, span, foreign.help() + f", in {_block_of(foreign.to)}")
    known = ", ".join(schema.key_names) or "(none)"
    return error("FT101", msg, span, f"known keys: {known}")


def _block_of(key: str | None) -> str:
    from ftlang.semantic.schema import BLOCKS

    homes = [b for b in BLOCKS if key in b.key_names]
    return " or ".join(_where(b) for b in homes) or "another block"


def _unknown_block(kind: str, span: Span, schema: BlockSchema) -> Diagnostic:
    options = list(schema.blocks) + schema.key_names
    guess = did_you_mean(kind, options)
    msg = f"unknown block `{kind}` in {_where(schema)}"
    if guess:
        return error("FT106", f"{msg}: did you mean `{guess}`?", span, f"replace `{kind}` with `{guess}`")
    return error("FT106", msg, span, f"blocks allowed here: {', '.join(schema.blocks) or '(none)'}")
