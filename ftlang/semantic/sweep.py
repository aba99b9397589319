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
import math
import random
from collections.abc import Callable
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
    # `optuna { ... }`: no points in advance (TPE picks each trial from the finished ones, backend/optuna.py);
    # the search space, trial count and seed instead, and the base plan's hash so the sweep moves with it
    space: dict[str, ast.Call] = field(default_factory=dict)
    trials: int | None = None
    seed: int = 0
    base_hash: str | None = None
    # sets -> the point's checked plan (raises DiagnosticError FT241): how an optuna trial becomes a point
    plan_point: Callable[[dict[str, str]], Plan] | None = field(default=None, compare=False, repr=False)

    @property
    def optuna(self) -> bool:
        return bool(self.space)

    @property
    def sha256(self) -> str:
        """Over what the sweep means: its points' plan hashes (an optuna sweep: its space, trials, seed and
        base plan) and the selection."""
        data: dict[str, Any] = {"metric": self.metric, "goal": self.goal}
        if not self.optuna:
            data["points"] = [[p.name, p.plan.sha256 if p.plan else None] for p in self.points]
        else:  # not its points: they are added as its trials run, the sweep stays the same
            data |= {"optuna": {k: [c.name, *(set_text(a) for a in c.args)] for k, c in self.space.items()},
                     "trials": self.trials, "seed": self.seed, "base": self.base_hash}
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
    axes: dict[str, tuple[ast.Value, ...]] = {}
    for st in node.body:
        if not isinstance(st, ast.Assign):
            diags.append(error("FT240", "a `grid` lists params: `NAME = [v1, v2]`", st.span))
            continue
        if not _param_ok(st, params, axes, diags):
            continue
        items = st.value.items if isinstance(st.value, ast.ListValue) else ()
        if not items or any(set_text(i) is None for i in items):
            diags.append(error("FT240", f"`{st.key}` needs a non-empty list of literal values", st.value.span,
                               f"{st.key} = [v1, v2]"))
            continue
        axes[st.key] = items
    return axes


def _random(node: ast.Block, params: dict, diags: list[Diagnostic]) -> dict[str, ast.Call]:
    """`random { lr = loguniform(1e-5, 1e-3), rank = choice(8, 16, 32) }` (or `optuna { ... }`): each
    param's distribution."""
    dists: dict[str, ast.Call] = {}
    for st in node.body:
        if not isinstance(st, ast.Assign) or not _param_ok(st, params, dists, diags):
            continue
        v = st.value
        lit = isinstance(v, ast.Call) and all(set_text(a) is not None for a in v.args) and not v.kwargs
        nums = lit and all(isinstance(a, (ast.Int, ast.Float)) for a in v.args)
        if lit and v.name == "choice" and v.args:
            dists[st.key] = v
        elif nums and v.name in ("loguniform", "uniform") and len(v.args) == 2 and _bounds_ok(v):
            dists[st.key] = v
        else:
            diags.append(error("FT240", f"`{st.key}` needs loguniform(LOW, HIGH), uniform(LOW, HIGH) with "
                               "LOW < HIGH (LOW > 0 for loguniform) or choice(v1, v2, ...)", v.span))
    return dists


def _bounds_ok(call: ast.Call) -> bool:
    lo, hi = call.args[0].value, call.args[1].value
    return lo < hi and (call.name == "uniform" or lo > 0)  # log needs a positive low bound


def _param_ok(st: ast.Assign, params: dict, seen: dict, diags: list[Diagnostic]) -> bool:
    from ftlang.semantic.values import did_you_mean

    if st.key not in params:
        guess = did_you_mean(st.key, params)
        diags.append(error("FT240", f"`{st.key}` is not a declared param: only params can be swept", st.key_span,
                           f"did you mean `{guess}`?" if guess else
                           f"declare it (`param {st.key} = ...`) and use it in the recipe"))
        return False
    if st.key in seen:
        diags.append(error("FT107", f"`{st.key}` is swept twice", st.key_span, "merge the two"))
        return False
    return True


def _draw(call: ast.Call, rng: random.Random) -> tuple[Any, str]:
    """One value of a distribution: (plain value, its `--set` text)."""
    if call.name == "choice":
        v = rng.choice(call.args)
        return _plain(v), set_text(v)
    lo, hi = float(call.args[0].value), float(call.args[1].value)
    x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if call.name == "loguniform" else rng.uniform(lo, hi)
    x = float(f"{x:.4g}")  # four significant digits: a point's value reads (and sets) as written
    return x, repr(x)


def _int_key(st: ast.Assign, diags: list[Diagnostic], low: int) -> int | None:
    if isinstance(st.value, ast.Int) and st.value.value >= low:
        return st.value.value
    diags.append(error("FT240", f"`{st.key}` expects an integer ≥ {low}", st.value.span))
    return None


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
    dists: dict[str, ast.Call] = {}
    trials, seed = None, 0
    select = None
    kind = "grid"
    for st in node.body:
        if isinstance(st, ast.Block) and st.kind == "grid" and not axes and not dists:
            axes = _grid(st, params, diags)
        elif isinstance(st, ast.Block) and st.kind in ("random", "optuna") and not axes and not dists:
            dists, kind = _random(st, params, diags), st.kind
        elif isinstance(st, ast.Assign) and st.key == "select" and select is None:
            select = _select(st.value, diags)
        elif isinstance(st, ast.Assign) and st.key == "trials" and trials is None:
            trials = _int_key(st, diags, 1)
        elif isinstance(st, ast.Assign) and st.key == "seed":
            seed = _int_key(st, diags, 0)
        else:
            diags.append(error("FT240", "a sweep holds one `grid { ... }`, `random { ... }` or `optuna { ... }` "
                               "(with `trials` and `seed`) and one `select = min(METRIC)`", st.span))
    if not axes and not dists and not diags:
        diags.append(error("FT240", "a sweep needs a `grid`, `random` or `optuna` block of params", node.kind_span))
    if dists and trials is None and not diags:
        article = "an" if kind == "optuna" else "a"
        diags.append(error("FT240", f"{article} {kind} sweep needs `trials = N`", node.kind_span, "trials = 8"))
    if select is None and not any(d.message.startswith("`select`") for d in diags):
        diags.append(error("FT240", "a sweep needs `select = min(METRIC)` or `max(METRIC)`", node.kind_span))
    if select is not None and metrics is not None and select[1] not in metrics:
        from ftlang.semantic.values import did_you_mean

        guess = did_you_mean(select[1], metrics)
        diags.append(error("FT240", f"`{select[1]}` is not a metric of this recipe's eval", node.kind_span,
                           f"did you mean `{guess}`?" if guess else "eval metrics: " + ", ".join(metrics)))
    if diags:
        return None, diags
    if kind == "optuna":
        return Sweep(recipe, select[1], select[0], node.span, space=dists, trials=trials, seed=seed or 0), []
    points = _grid_points(axes) if axes else _random_points(dists, trials, seed or 0)
    names = list(axes or dists)
    return Sweep(recipe, select[1], select[0], node.span, points,
                 axes={n: tuple(dict.fromkeys(p.params[n] for p in points)) for n in names}), []


def _grid_points(axes: dict[str, tuple[ast.Value, ...]]) -> tuple[SweepPoint, ...]:
    names = list(axes)
    return tuple(
        SweepPoint(f"p{i}", {n: _plain(v) for n, v in zip(names, combo, strict=True)},
                   {n: set_text(v) for n, v in zip(names, combo, strict=True)})
        for i, combo in enumerate(itertools.product(*(axes[n] for n in names))))


def _random_points(dists: dict[str, ast.Call], trials: int, seed: int) -> tuple[SweepPoint, ...]:
    """`trials` points drawn with one seeded generator, params in their written order: the same sweep
    block always gives the same points."""
    rng = random.Random(seed)
    out = []
    for i in range(trials):
        drawn = {n: _draw(c, rng) for n, c in dists.items()}
        out.append(SweepPoint(f"p{i}", {n: v for n, (v, _) in drawn.items()}, {n: t for n, (_, t) in drawn.items()}))
    return tuple(out)


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
    if sweep.optuna:  # TPE picks each trial from the finished ones: the points exist only once run
        return {"sha256": sweep.sha256, "select": {"goal": sweep.goal, "metric": sweep.metric},
                "optuna": {"sampler": "TPE", "seed": sweep.seed, "trials": sweep.trials,
                           "space": {k: {"distribution": c.name, "args": [_plain(a) for a in c.args]}
                                     for k, c in sweep.space.items()}},
                "points": [], "note": "optuna picks each point from the results of the finished ones: the points, "
                                      "their plans and estimates are not known before the run",
                "totals": {"points": sweep.trials, "seconds": None, "usd": None, "peak_bytes": None}}
    points = [{"name": p.name, "params": p.params, "sha256": p.plan.sha256 if p.plan else None,
               "estimates": _estimates(p.plan) if p.plan else None} for p in sweep.points]
    est = [p["estimates"] or {} for p in points]
    return {"sha256": sweep.sha256, "select": {"goal": sweep.goal, "metric": sweep.metric},
            "params": {k: list(v) for k, v in sweep.axes.items()}, "points": points,
            "totals": {"points": len(points), "seconds": _total([e.get("seconds") for e in est]),
                       "usd": _total([e.get("usd") for e in est]),
                       "peak_bytes": max((e.get("peak_bytes") or 0 for e in est), default=0)}}
