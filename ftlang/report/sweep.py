"""A sweep's comparison: sweep.json (the facts), sweep.md and sweep.html (a table of every point, the
selected best point, and the metric against each swept param as SVG) in the sweep directory.

It reads only what each point's run left in its directory (run.json, eval.json), so it summarizes a sweep
run here as well as one whose points ran elsewhere (`ftlang plan --sweep-jobs`) into the same layout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ftlang.atomic import write_json, write_text
from ftlang.report.build import _env
from ftlang.report.charts import chart


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def point_facts(name: str, params: dict, run_dir: Path, metric: str) -> dict[str, Any]:
    """One row: the point's values, status, metrics before/after, gates and time, from its run directory."""
    run, ev = _read(run_dir / "run.json"), _read(run_dir / "eval.json")
    timings = run.get("timings") or {}
    after = ev.get("metrics_after") or {}
    return {"name": name, "params": params, "dir": str(run_dir), "status": run.get("status", "not run"),
            "exit_code": run.get("exit_code"), "plan_hash": ev.get("plan_hash") or run.get("plan_hash"),
            "metrics_before": ev.get("metrics_before") or {}, "metrics_after": after,
            "value": _finite(after.get(metric)), "gates": ev.get("gates") or [],
            "gates_passed": ev.get("gates_passed"),
            "seconds": _stage_seconds(timings)}


def _stage_seconds(timings: dict) -> float | None:
    """The point's time: its stages' seconds (timings also hold rates such as train_tokens_per_s, not time)."""
    total = sum(v for k, v in timings.items() if not k.endswith("_per_s") and _finite(v) is not None)
    return round(total, 3) or None


def select_best(rows: list[dict], goal: str) -> dict | None:
    """The finished point whose gates passed with the best metric (min or max); None when none qualifies."""
    ok = [r for r in rows if r["status"] == "done" and r["gates_passed"] and r["value"] is not None]
    if not ok:
        return None
    return (min if goal == "min" else max)(ok, key=lambda r: r["value"])


def plots(rows: list[dict], params: list[str], metric: str) -> list[dict]:
    """The metric against each swept param (numeric params only), one chart per param."""
    out = []
    for name in params:
        pts = sorted((float(r["params"][name]), r["value"]) for r in rows
                     if r["value"] is not None and _finite(r["params"].get(name)) is not None)
        if not pts:
            continue
        xs = [p[0] for p in pts]
        c = chart({metric: pts}, (min(xs), max(xs)), 240, metric, x_title=name)
        if c is not None:
            out.append(c)
    return out


SPEC = "sweep.points.json"  # what a sweep directory holds: the selection and every point's name and values


def write_spec(sweep_dir: Path, recipe: str, metric: str, goal: str, points: list[tuple[str, dict]],
               sha256: str) -> None:
    write_json(Path(sweep_dir) / SPEC, {"recipe": recipe, "metric": metric, "goal": goal, "sha256": sha256,
                                        "points": [{"name": n, "params": p} for n, p in points]}, sort_keys=True)


def summarize_dir(sweep_dir: Path) -> dict[str, Any] | None:
    """The summary of a sweep directory from its spec (a run here, or `--sweep-jobs` jobs); None without one."""
    spec = _read(Path(sweep_dir) / SPEC)
    if not spec:
        return None
    return summarize(Path(sweep_dir), spec["recipe"], spec["metric"], spec["goal"],
                     [(p["name"], p["params"]) for p in spec["points"]], spec.get("sha256", ""))


def summarize(sweep_dir: Path, recipe: str, metric: str, goal: str, points: list[tuple[str, dict]],
              sha256: str = "") -> dict[str, Any]:
    """Write sweep.json, sweep.md and sweep.html for the points (name, params) under sweep_dir; returns the facts."""
    sweep_dir = Path(sweep_dir)
    rows = [point_facts(name, params, sweep_dir / name, metric) for name, params in points]
    best = select_best(rows, goal)
    params = list(points[0][1]) if points else []
    facts = {"recipe": recipe, "sha256": sha256, "select": {"goal": goal, "metric": metric}, "params": params,
             "points": rows, "best": best["name"] if best else None,
             "finished": sum(r["status"] == "done" for r in rows)}
    write_json(sweep_dir / "sweep.json", facts, sort_keys=True)
    context = {"s": facts, "best": best, "plots": plots(rows, params, metric)}
    write_text(sweep_dir / "sweep.md", _env(False).get_template("sweep.md.j2").render(**context))
    write_text(sweep_dir / "sweep.html", _env(True).get_template("sweep.html.j2").render(**context))
    return facts
