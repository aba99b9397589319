"""Evaluate plan expressions (filter steps, gates) over a mapping of names. Never Python eval.

Only the functions in FUNCTIONS may be called; a name missing from the environment is an
ExprError the caller turns into a positioned diagnostic.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from ftlang import operators
from ftlang.plan import ArithExpr, BoolExpr, CallExpr, CompareExpr, ConstExpr, Expr, NameExpr, NotExpr


class ExprError(Exception):
    pass


def _len(x: Any) -> int:
    if x is None:
        return 0
    if isinstance(x, (str, list, tuple, dict)):
        return len(x)
    raise ExprError(f"len() of a {type(x).__name__}")


def _words(x: Any) -> int:
    return len(str(x or "").split())


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,  # characters of a string, items of a list (chat messages)
    "words": _words,  # whitespace-separated words
    "lower": lambda x: str(x or "").lower(),
    "upper": lambda x: str(x or "").upper(),
    "strip": lambda x: str(x or "").strip(),
    "contains": lambda x, s: str(s) in str(x or ""),
    "startswith": lambda x, s: str(x or "").startswith(str(s)),
    "endswith": lambda x, s: str(x or "").endswith(str(s)),
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}


def evaluate(expr: Expr, env: Mapping[str, Any]) -> Any:
    if isinstance(expr, ConstExpr):
        return expr.value
    if isinstance(expr, NameExpr):
        if expr.name not in env:
            raise ExprError(f"unknown name {expr.name!r}")
        return env[expr.name]
    if isinstance(expr, NotExpr):
        return not truthy(evaluate(expr.operand, env))
    if isinstance(expr, BoolExpr):
        left = truthy(evaluate(expr.left, env))
        if expr.kind == "and":
            return left and truthy(evaluate(expr.right, env))
        return left or truthy(evaluate(expr.right, env))
    if isinstance(expr, CompareExpr):
        left, right = evaluate(expr.left, env), evaluate(expr.right, env)
        try:
            return bool(_COMPARE[expr.op](left, right))
        except TypeError as e:
            raise ExprError(f"cannot compare {type(left).__name__} {expr.op} {type(right).__name__}") from e
    if isinstance(expr, ArithExpr):
        left, right = evaluate(expr.left, env), evaluate(expr.right, env)
        try:
            return _ARITH[expr.op](left, right)
        except (TypeError, ZeroDivisionError) as e:
            raise ExprError(f"cannot compute {left!r} {expr.op} {right!r}: {e}") from e
    if isinstance(expr, CallExpr):
        fn = FUNCTIONS.get(expr.fn)
        if fn is None:
            raise ExprError(f"unknown function {expr.fn!r}")
        try:
            return fn(*(evaluate(a, env) for a in expr.args))
        except TypeError as e:
            raise ExprError(f"{expr.fn}(): {e}") from e
    raise ExprError(f"not an expression: {expr!r}")


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value != ""
    raise ExprError(f"a {type(value).__name__} is not a condition")


def names(expr: Expr) -> set[str]:
    """Every name an expression reads (the checker uses it: gates on metrics that are computed)."""
    if isinstance(expr, NameExpr):
        return {expr.name}
    if isinstance(expr, NotExpr):
        return names(expr.operand)
    if isinstance(expr, (BoolExpr, CompareExpr, ArithExpr)):
        return names(expr.left) | names(expr.right)
    if isinstance(expr, CallExpr):
        return set().union(*(names(a) for a in expr.args)) if expr.args else set()
    return set()


def to_text(expr: Expr) -> str:
    """The canonical text of an expression (gate tables, reports): parentheses kept where the
    precedence table needs them, so the text parses back to the same expression."""
    if isinstance(expr, ConstExpr):
        v = expr.value
        return f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else repr(v)
    if isinstance(expr, NameExpr):
        return expr.name
    if isinstance(expr, NotExpr):
        return f"not {_wrap(expr.operand, operators.NOT)}"
    if isinstance(expr, CompareExpr):  # comparisons do not chain: a comparison operand is parenthesized
        return f"{_wrap(expr.left, operators.COMPARE + 1)} {expr.op} {_wrap(expr.right, operators.COMPARE + 1)}"
    if isinstance(expr, (BoolExpr, ArithExpr)):
        op = expr.kind if isinstance(expr, BoolExpr) else expr.op
        p = operators.BINARY[op]
        return f"{_wrap(expr.left, p)} {op} {_wrap(expr.right, p + 1)}"
    if isinstance(expr, CallExpr):
        return f"{expr.fn}({', '.join(to_text(a) for a in expr.args)})"
    return "?"


def _prec(expr: Expr) -> int:
    if isinstance(expr, BoolExpr):
        return operators.BINARY[expr.kind]
    if isinstance(expr, (CompareExpr, ArithExpr)):
        return operators.BINARY[expr.op]
    if isinstance(expr, NotExpr):
        return operators.NOT
    if isinstance(expr, ConstExpr) and isinstance(expr.value, (int, float)) and not isinstance(expr.value, bool) \
            and expr.value < 0:
        return operators.UNARY_MINUS
    return operators.ATOM


def _wrap(expr: Expr, at_least: int) -> str:
    return operators.wrap(to_text(expr), _prec(expr), at_least)
