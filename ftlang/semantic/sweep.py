"""A recipe's `sweep` block: the params it varies, the points they span, and the metric that selects.

    sweep {
      grid { lr = [1e-4, 2e-4], rank = [8, 16] }
      select = min(perplexity)
    }

The block is not part of the plan (a recipe's plan hash does not move when a sweep is added): each point
is the recipe checked with `--set` for its values (semantic/check.py), so a point is an ordinary plan
that runs, and reproduces, alone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from ftlang.diagnostics import Diagnostic, error
from ftlang.plan import Plan
from ftlang.source import Span
from ftlang.syntax import ast

GOALS = ("min", "max")


@dataclass(frozen=True)
class SweepPoint:
    name: str  # the point's directory name: p0, p1, … in grid order
    params: dict[str, Any]  # param -> value (JSON-able), for reports
    sets: dict[str, str]  # param -> `--set` text: the point is the recipe checked with these
    plan: Plan | None = None


@dataclass(frozen=True)
class Sweep:
    recipe: str
    metric: str
    goal: str  # min | max
    span: Span
    points: tuple[SweepPoint, ...] = ()
    registry: Any = None  # the recipe's RegistrySpec: where the selected point is registered
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """Over what the sweep means: its points' plan hashes and the selection."""
        data = {"metric": self.metric, "goal": self.goal,
                "points": [[p.name, p.plan.sha256 if p.plan else None] for p in self.points]}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def set_text(v: ast.Value) -> str | None:
    """A literal as the `--set` text that spells it (resolve.parse_set_value reads it back)."""
    if isinstance(v, (ast.Int, ast.Float, ast.Percent, ast.Size)):
        return v.text
    if isinstance(v, ast.Bool):
        return "true" if v.value else "false"
    if isinstance(v, ast.Str):
        return '"' + v.value + '"'
    if isinstance(v, ast.Ident):
        return v.name
    return None


def _plain(v: ast.Value) -> Any:
    return v.name if isinstance(v, ast.Ident) else v.value


def _grid(node: ast.Block, params: dict, diags: list[Diagnostic]) -> dict[str, tuple[ast.Value, ...]]:
    from ftlang.semantic.values import did_you_mean

    axes: dict[str, tuple[ast.Value, ...]] = {}
    for st in node.body:
        if not isinstance(st, ast.Assign):
            diags.append(error("FT240", "a `grid` lists params: `NAME = [v1, v2]`", st.span))
            continue
        if st.key not in params:
            guess = did_you_mean(st.key, params)
            diags.append(error("FT240", f"`{st.key}` is not a declared param: only params can be swept", st.key_span,
                               f"did you mean `{guess}`?" if guess else
                               f"declare it (`param {st.key} = ...`) and use it in the recipe"))
            continue
        if st.key in axes:
            diags.append(error("FT107", f"`{st.key}` is swept twice", st.key_span, "merge the two lists"))
            continue
        items = st.value.items if isinstance(st.value, ast.ListValue) else ()
        if not items or any(set_text(i) is None for i in items):
            diags.append(error("FT240", f"`{st.key}` needs a non-empty list of literal values", st.value.span,
                               f"{st.key} = [v1, v2]"))
            continue
        axes[st.key] = items
    return axes


def _select(v: ast.Value, diags: list[Diagnostic]) -> tuple[str, str] | None:
    if (isinstance(v, ast.Call) and v.name in GOALS and len(v.args) == 1 and not v.kwargs
            and isinstance(v.args[0], ast.Ident)):
        return v.name, v.args[0].name
    diags.append(error("FT240", "`select` is min(METRIC) or max(METRIC)", v.span, "select = min(perplexity)"))
    return None


def read_sweep(recipe: str, node: ast.Block, params: dict, metrics: list[str] | None) -> tuple[Sweep | None,
                                                                                             list[Diagnostic]]:
    """The sweep with its points (plans not yet checked), or None with the block's problems.
    `metrics`: the eval metrics of the recipe's plan (None when the recipe has errors: not checked)."""
    diags: list[Diagnostic] = []
    axes: dict[str, tuple[ast.Value, ...]] = {}
    select = None
    for st in node.body:
        if isinstance(st, ast.Block) and st.kind == "grid" and not axes:
            axes = _grid(st, params, diags)
        elif isinstance(st, ast.Assign) and st.key == "select" and select is None:
            select = _select(st.value, diags)
        else:
            diags.append(error("FT240", "a sweep holds one `grid { ... }` and one `select = min(METRIC)`", st.span))
    if not axes and not diags:
        diags.append(error("FT240", "a sweep needs a `grid` of params", node.kind_span))
    if select is None and not any(d.message.startswith("`select`") for d in diags):
        diags.append(error("FT240", "a sweep needs `select = min(METRIC)` or `max(METRIC)`", node.kind_span))
    if select is not None and metrics is not None and select[1] not in metrics:
        from ftlang.semantic.values import did_you_mean

        guess = did_you_mean(select[1], metrics)
        diags.append(error("FT240", f"`{select[1]}` is not a metric of this recipe's eval", node.kind_span,
                           f"did you mean `{guess}`?" if guess else "eval metrics: " + ", ".join(metrics)))
    if diags:
        return None, diags
    names = list(axes)
    points = tuple(
        SweepPoint(f"p{i}", {n: _plain(v) for n, v in zip(names, combo, strict=True)},
                   {n: set_text(v) for n, v in zip(names, combo, strict=True)})
        for i, combo in enumerate(itertools.product(*(axes[n] for n in names))))
    return Sweep(recipe, select[1], select[0], node.span, points,
                 {n: tuple(_plain(v) for v in axes[n]) for n in names}), []


def point_plan(plan: Plan) -> Plan:
    """A point's plan: the recipe's with `--set` for its values, less its `register` block: the sweep
    registers only the point it selects (backend/sweep.py), never every point."""
    if plan.export.registry is None:
        return plan
    return plan.model_copy(update={"export": plan.export.model_copy(update={"registry": None})}).seal()


def point_label(point: SweepPoint) -> str:
    return point.name + " (" + ", ".join(f"{k} = {v}" for k, v in point.sets.items()) + ")"


def _estimates(plan: Plan) -> dict[str, Any]:
    r = plan.resources
    return {"peak_bytes": r.memory.peak_bytes, "fits": r.fits, "trainable_params": r.trainable_params,
            "seconds": r.time.seconds if r.time else None, "usd": r.cost.usd if r.cost else None}


def _total(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else round(sum(values), 6)  # unknown stays unknown


def sweep_summary(sweep: Sweep) -> dict[str, Any]:
    """`sweep` of `ftlang plan`'s output: the selection, every point's values, plan hash and estimates, totals."""
    points = [{"name": p.name, "params": p.params, "sha256": p.plan.sha256 if p.plan else None,
               "estimates": _estimates(p.plan) if p.plan else None} for p in sweep.points]
    est = [p["estimates"] or {} for p in points]
    return {"sha256": sweep.sha256, "select": {"goal": sweep.goal, "metric": sweep.metric},
            "params": {k: list(v) for k, v in sweep.axes.items()}, "points": points,
            "totals": {"points": len(points), "seconds": _total([e.get("seconds") for e in est]),
                       "usd": _total([e.get("usd") for e in est]),
                       "peak_bytes": max((e.get("peak_bytes") or 0 for e in est), default=0)}}
