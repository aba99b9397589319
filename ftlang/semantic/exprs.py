"""Recipe expressions (gates, filter conditions) → plan Expr models."""

from __future__ import annotations

from typing import Any, Protocol

from ftlang import plan as P
from ftlang.diagnostics import error
from ftlang.expr import FUNCTIONS
from ftlang.semantic.schema import METRICS
from ftlang.semantic.values import Params, Problem, did_you_mean
from ftlang.syntax import ast


class HasParams(Protocol):
    params: Params


#: what a gate may read: every metric the plan knows and the two verdicts; a param of another
#: name in a gate stands for its value
GATE_NAMES = frozenset(METRICS) | {"overfitting", "forgetting"}

def to_expr(ctx: HasParams, node: ast.Value, names: tuple[str, ...] | None) -> Any:
    """An AST expression → plan Expr; `names` limits the identifiers (None: any, checked elsewhere)."""
    if isinstance(node, ast.Compare):
        return P.CompareExpr(op=node.op, left=to_expr(ctx, node.left, names), right=to_expr(ctx, node.right, names))
    if isinstance(node, ast.BoolOp):
        return P.BoolExpr(kind=node.op, left=to_expr(ctx, node.left, names), right=to_expr(ctx, node.right, names))
    if isinstance(node, ast.Not):
        return P.NotExpr(operand=to_expr(ctx, node.operand, names))
    if isinstance(node, ast.Arith):
        right = to_expr(ctx, node.right, names)
        if node.op == "/" and _is_zero(right):  # would fail on every evaluation, a gate after the training
            raise Problem(error("FT222", "division by zero", node.right.span,
                                "divide by a non-zero number, or by a metric or field"))
        return P.ArithExpr(op=node.op, left=to_expr(ctx, node.left, names), right=right)
    if isinstance(node, ast.Neg):
        inner = to_expr(ctx, node.operand, names)
        if isinstance(inner, P.ConstExpr) and isinstance(inner.value, (int, float)) \
                and not isinstance(inner.value, bool):
            return P.ConstExpr(value=-inner.value)
        return P.ArithExpr(op="-", left=P.ConstExpr(value=0), right=inner)
    if isinstance(node, ast.Call):
        if node.name not in FUNCTIONS:
            guess = did_you_mean(node.name, FUNCTIONS)
            raise Problem(error("FT201", f"unknown function `{node.name}`", node.name_span,
                                f"did you mean `{guess}`?" if guess else f"functions: {', '.join(FUNCTIONS)}"))
        return P.CallExpr(fn=node.name, args=[to_expr(ctx, a, names) for a in node.args])
    if isinstance(node, ast.Ident):
        if names is None and node.name in ctx.params and node.name not in GATE_NAMES:
            return to_expr(ctx, ctx.params[node.name], names)  # `gate perplexity < max_ppl`
        if names is not None and node.name not in names:
            if node.name in ctx.params:
                return to_expr(ctx, ctx.params[node.name], names)
            guess = did_you_mean(node.name, names)
            raise Problem(error("FT201", f"unknown field `{node.name}` in a filter", node.span,
                                f"did you mean `{guess}`?" if guess else f"row fields: {', '.join(names)}"))
        return P.NameExpr(name=node.name)
    if isinstance(node, (ast.Str, ast.Int, ast.Float, ast.Bool, ast.Percent)):
        return P.ConstExpr(value=node.value)
    raise Problem(error("FT113", "not an expression", node.span, "use comparisons, and/or/not, names and literals"))


def _is_zero(expr: Any) -> bool:
    return isinstance(expr, P.ConstExpr) and isinstance(expr.value, (int, float)) \
        and not isinstance(expr.value, bool) and expr.value == 0
