"""`ftlang report diff RUN_A RUN_B`: what differs between two runs, from their report.json files.

Sections: plan keys (flattened dotted paths; locations and the project root left out, as in the plan
hash), data fingerprints, package versions and device, seeds, and metric deltas (after training).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ftlang.diagnostics import DiagnosticError, error

#: plan keys that say where, not what (the plan hash skips them too)
_SKIP = frozenset({"loc", "project_root", "sha256"})


def load(run: str | Path) -> dict:
    path = Path(run)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise DiagnosticError(error("FT830", f"no report.json in {run}", None,
                                    help="pass a run directory written by `ftlang run` (runs/<recipe>/<id>/)"))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DiagnosticError(error("FT830", f"{path} is not valid JSON: {e}", None,
                                    help="regenerate it by rerunning the recipe")) from e


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if k in _SKIP:
                continue
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


def _changes(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]


def diff(a: dict, b: dict) -> dict[str, list]:
    env_a = {k: v for k, v in (a.get("environment") or {}).items()}
    env_b = {k: v for k, v in (b.get("environment") or {}).items()}
    metrics = []
    ma, mb = a.get("metrics_after") or {}, b.get("metrics_after") or {}
    for name in sorted(set(ma) | set(mb)):
        x, y = ma.get(name), mb.get(name)
        if x == y:
            continue
        delta = y - x if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None
        rel = delta / abs(x) if delta is not None and x not in (0, None) and math.isfinite(x) else None
        metrics.append((name, x, y, delta, rel))
    verdicts = [(k, a.get(k), b.get(k)) for k in ("overfitting", "forgetting", "gates_passed", "exit_code") if a.get(k) != b.get(k)]
    return {
        "plan": _changes(flatten(a.get("plan") or {}), flatten(b.get("plan") or {})),
        "plan_hash": [("plan_hash", a.get("plan_hash"), b.get("plan_hash"))] if a.get("plan_hash") != b.get("plan_hash") else [],
        "data": _changes((a.get("data") or {}).get("fingerprints") or {}, (b.get("data") or {}).get("fingerprints") or {}),
        "environment": _changes(env_a, env_b),
        "git": _changes({"commit": (a.get("git") or {}).get("commit")}, {"commit": (b.get("git") or {}).get("commit")}),
        "seed": [row for row in _changes(flatten(a.get("plan") or {}), flatten(b.get("plan") or {}))
                 if row[0].endswith(".seed")],
        "metrics": metrics,
        "verdicts": verdicts,
    }


def _seed_only(key: str) -> bool:
    """A plan key that changes only randomness: a seed, or a recipe param (whose effect on the plan,
    if any beyond a seed, shows up as another differing key)."""
    return key.endswith(".seed") or key == "seed" or key.startswith("recipe.params.")


def _v(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return json.dumps(x) if not isinstance(x, str) else x


def format_diff(d: dict[str, list], name_a: str, name_b: str) -> str:
    lines = [f"--- {name_a}", f"+++ {name_b}"]
    titles = {"plan_hash": "plan hash", "plan": "plan keys", "seed": "seeds", "data": "data fingerprints",
              "environment": "versions and device", "git": "git commit", "metrics": "metrics (after training)",
              "verdicts": "verdicts"}
    any_diff = False
    for key in ("plan_hash", "seed", "plan", "data", "environment", "git", "metrics", "verdicts"):
        rows = d.get(key) or []
        if not rows:
            continue
        any_diff = True
        lines.append(f"\n{titles[key]}:")
        for row in rows:
            if key == "metrics":
                name, x, y, delta, rel = row
                extra = f"  ({'+' if delta >= 0 else ''}{delta:.6g}" + (f", {rel:+.2%}" if rel is not None else "") + ")" if delta is not None else ""
                lines.append(f"  {name}: {_v(x)} -> {_v(y)}{extra}")
            else:
                k, x, y = row
                lines.append(f"  {k}: {_v(x)} -> {_v(y)}")
    if not any_diff:
        lines.append("\nno differences: same plan, data, versions, seed and metrics")
    elif not d.get("plan") and not d.get("data") and not d.get("environment") and not d.get("seed") and d.get("metrics"):
        lines.append("\nsame plan, data, versions and seed, yet the metrics differ: nondeterminism "
                     "(set `train { deterministic = true }`, or check the device)")
    elif d.get("seed") and not d.get("data") and not d.get("environment") and \
            all(_seed_only(k) for k, _, _ in d.get("plan") or []):
        lines.append("\nthe runs differ only in their seed: the metric deltas above come from it")
    return "\n".join(lines)
