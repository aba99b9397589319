"""Gates: every `gate` expression evaluated on the final metrics plus the two verdicts.

Codes: FT801 a gate names a metric that was not computed; FT802 a gate cannot be evaluated (type
error, division by zero, a NaN metric). Both point at the gate's recipe line.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftlang.atomic import write_json
from ftlang.diagnostics import Diagnostic, DiagnosticError, error
from ftlang.expr import ExprError, evaluate, names, to_text, truthy
from ftlang.plan import CompareExpr, ConstExpr, GatePlan, NameExpr
from ftlang.source import loc_span

VERDICTS = ("overfitting", "forgetting")


@dataclass
class GateResult:
    text: str
    passed: bool
    value: str  # the metric value(s) the gate read, e.g. "perplexity=11.2"
    threshold: str  # e.g. "< 12", or the whole expression when it is not a single comparison
    line: int | None = None
    values: dict[str, Any] = field(default_factory=dict)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _threshold(gate: GatePlan) -> str:
    e = gate.expr
    if isinstance(e, CompareExpr):
        if isinstance(e.left, NameExpr) and isinstance(e.right, ConstExpr):
            return f"{e.op} {to_text(e.right)}"
        if isinstance(e.right, NameExpr) and isinstance(e.left, ConstExpr):
            return f"{_FLIP[e.op]} {to_text(e.left)}"
    return gate.text or to_text(e)


def environment(metrics: Mapping[str, float], overfitting: bool, forgetting: float | None) -> dict[str, Any]:
    env: dict[str, Any] = dict(metrics)
    env["overfitting"] = bool(overfitting)
    if forgetting is not None:
        env["forgetting"] = float(forgetting)
    return env


def check_gates(gates: list[GatePlan], env: Mapping[str, Any], declared: Collection[str] = ()) -> list[GateResult]:
    """Evaluate every gate; a gate naming something not in `env` raises FT801 (all at once).

    `declared`: the metrics the recipe asked for, so a declared metric that could not be computed
    (e.g. ROUGE on a validation set without assistant answers) gets its own message.
    """
    problems: list[Diagnostic] = []
    results: list[GateResult] = []
    for gate in gates:
        text = gate.text or to_text(gate.expr)
        missing = sorted(n for n in names(gate.expr) if n not in env)
        if missing:
            known = ", ".join(sorted(env)) or "none"
            unmeasured = [n for n in missing if n in declared]
            if unmeasured:
                message = (f"gate `{text}` reads {', '.join(missing)}, declared but not measurable on this "
                           "validation set (no rows with a final assistant answer, or no validation rows)")
                help_ = "give the validation set chat or instruction rows with answers, or drop the gate"
            else:
                message = f"gate `{text}` reads {', '.join(missing)}, which this run did not compute"
                help_ = (f"add it to `eval {{ metrics = [...] }}` (computed here: {known}); "
                         "`forgetting` needs `eval { forgetting on <dataset> }`")
            problems.append(error("FT801", message, loc_span(gate.loc), help=help_))
            continue
        values = {n: env[n] for n in sorted(names(gate.expr))}
        nan = [n for n, v in values.items() if isinstance(v, float) and math.isnan(v)]
        if nan:
            problems.append(error(
                "FT802", f"gate `{text}`: {', '.join(nan)} is NaN (no validation tokens, or a diverged model)",
                loc_span(gate.loc), help="check the validation set and the training loss in metrics.jsonl",
            ))
            continue
        try:
            passed = truthy(evaluate(gate.expr, env))
        except ExprError as e:
            problems.append(error("FT802", f"gate `{text}` cannot be evaluated: {e}", loc_span(gate.loc),
                                  help="a gate compares a metric or verdict with a number or true/false"))
            continue
        results.append(GateResult(
            text=text, passed=passed,
            value=", ".join(f"{n}={_fmt(v)}" for n, v in values.items()),
            threshold=_threshold(gate), line=gate.loc.line if gate.loc else None, values=values,
        ))
    if problems:
        raise DiagnosticError(problems)
    return results


def table(results: list[GateResult]) -> str:
    """A plain-text table: gate, value, threshold, PASS/FAIL."""
    if not results:
        return "gates: none declared"
    rows = [("gate", "value", "threshold", "result")] + [
        (r.text, r.value, r.threshold, "PASS" if r.passed else "FAIL") for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_gates(run_dir: Path, results: list[GateResult], env: Mapping[str, Any], forced: bool) -> Path:
    """gates.json in the run dir, written to a temp name and renamed."""
    path = Path(run_dir) / "gates.json"
    payload = {
        "passed": all(r.passed for r in results),
        "forced": forced,
        "gates": [asdict(r) for r in results],
        "inputs": {k: v for k, v in env.items() if not (isinstance(v, float) and math.isnan(v))},
    }
    return write_json(path, payload, sort_keys=True)
