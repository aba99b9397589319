"""`ftlang run` of a recipe with a sweep: every point an ordinary run, one at a time, then the comparison.

    runs/<recipe>/sweep-<hash>/p0/, p1/, …   (or --out DIR)   each a run directory of the point's plan
    runs/<recipe>/sweep-<hash>/sweep.json, sweep.md, sweep.html

A point whose run.json says `done` is skipped; one with a plan.json but no `done` (interrupted, failed) is
resumed from its last complete checkpoint; `--points K` runs the first K. Ctrl-C (or SIGTERM) ends the
current point as `interrupted` (resumable, see backend/run.py) and stops the sweep. The recipe's `register`
block registers only the best point whose gates passed (every passing one with register="all").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ftlang.diagnostics import DiagnosticError
from ftlang.plan import Plan

INTERRUPTED = 130


def sweep_dir(base: Plan, sweep) -> Path:
    from ftlang.backend.run import runs_root

    return runs_root(base) / f"sweep-{sweep.short_hash}"


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError):
        return None


def run_points(sweep, out: Path, *, points: int | None, force: bool, allow_outside: bool,
               log: Callable[[str], None], recipe_file: str | None,
               on_error: Callable[[DiagnosticError], None]) -> int:
    """Run the sweep's points in order (each through backend.run.execute); 130 when interrupted, else 0."""
    chosen = sweep.points[:points] if points else sweep.points
    for i, point in enumerate(chosen, 1):
        try:
            code = run_point(point, out / point.name, f"{i}/{len(chosen)}", force=force, allow_outside=allow_outside,
                             log=log, recipe_file=recipe_file)
        except DiagnosticError as e:  # recorded as `failed` in the point's run.json; the next point still runs
            on_error(e)
            continue
        if code == INTERRUPTED:
            log(f"sweep interrupted at {point.name}: rerun the same command to resume it")
            return INTERRUPTED
    return 0


def run_point(point, run_dir: Path, counter: str, *, force: bool, allow_outside: bool,
              log: Callable[[str], None], recipe_file: str | None) -> int:
    """One point as an ordinary run: skipped when done, resumed when started; its exit code (130 interrupted)."""
    from ftlang.backend.run import execute
    from ftlang.semantic.sweep import point_label

    if _status(run_dir) == "done":
        log(f"sweep point {counter} {point_label(point)}: finished, skipped ({run_dir})")
        return 0
    resume = run_dir if (run_dir / "plan.json").is_file() else None
    log(f"\nsweep point {counter} {point_label(point)}: {'resuming' if resume else 'running'} in {run_dir}")
    try:
        return execute(point.plan, run_dir=run_dir, resume=resume, force=force, allow_outside=allow_outside,
                       log=log, recipe_file=recipe_file)
    except KeyboardInterrupt:  # between stages that record their own ending
        return INTERRUPTED


def _optuna(sweep, out: Path, *, points: int | None, force: bool, allow_outside: bool, log: Callable[[str], None],
            recipe_file: str | None, on_error: Callable[[DiagnosticError], None]):
    """Run the study (backend/tpe.py), each trial a point run like a grid's; (exit code, the sweep with its
    trials as points, each with its plan)."""
    from dataclasses import replace

    from ftlang.backend.tpe import run_study
    from ftlang.report.sweep import point_facts

    def objective(point) -> tuple[int, float | None]:
        point = replace(point, plan=sweep.plan_point(point.sets))  # FT241 when the trial does not check
        code = run_point(point, out / point.name, f"{point.name}", force=force, allow_outside=allow_outside,
                         log=log, recipe_file=recipe_file)
        facts = point_facts(point.name, point.params, out / point.name, sweep.metric)
        return code, facts["value"] if facts["status"] == "done" else None

    code, trials = run_study(sweep, out, objective, limit=points, log=log, on_error=on_error)
    return code, replace(sweep, points=tuple(replace(p, plan=sweep.plan_point(p.sets)) for p in trials))


def register(sweep, out: Path, facts: dict, which: str, log: Callable[[str], None]) -> list[dict]:
    """Register the selected point (which="best") or every passing point (which="all") under the recipe's
    register block; nothing when the recipe has none."""
    from ftlang.backend.finish import publish

    if sweep.registry is None:
        return []
    names = [facts["best"]] if which == "best" and facts["best"] else []
    if which == "all":
        names = [r["name"] for r in facts["points"] if r["status"] == "done" and r["gates_passed"]]
    by_name = {p.name: p for p in sweep.points}
    done = []
    for name in names:
        run_dir = out / name
        ev = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
        if not ev.get("export"):
            continue
        export_dir = Path(ev["export"]["dir"])
        artifacts = {a: export_dir / a for a in ev["export"]["artifacts"]}
        data = json.loads((run_dir / "data.json").read_text(encoding="utf-8")) if (run_dir / "data.json").is_file() else {}
        gates = [{"text": g.get("text"), "passed": g.get("passed"), "value": g.get("value"),
                  "threshold": g.get("threshold")} for g in ev.get("gates") or []]
        plan = by_name[name].plan
        spec = sweep.registry
        # once per point: a rerun that only summarizes must not publish the same run again
        marker = run_dir / "registered.json"
        if marker.is_file():
            continue
        entry = publish(plan, spec, run_dir, artifacts, dict(data.get("fingerprints") or {}),
                        ev.get("metrics_after") or {}, gates, bool(ev.get("forced")))
        marker.write_text(json.dumps(entry) + "\n", encoding="utf-8")
        log(f"registered {name}: {entry['name']} {entry['version']} ({entry['stage']}) in {entry['dir']}")
        done.append(entry)
    return done


def execute_sweep(sweep, base: Plan, *, out: Path | None, points: int | None, force: bool, allow_outside: bool,
                  log: Callable[[str], None], recipe_file: str | None, register_which: str,
                  on_error: Callable[[DiagnosticError], None]) -> int:
    """Run, summarize, register. Exit code: 130 interrupted, 1 when a point did not finish, 3 when no point
    passed its gates, else 0."""
    from ftlang.report.sweep import summarize, write_spec

    out = out or sweep_dir(base, sweep)
    out.mkdir(parents=True, exist_ok=True)
    write_spec(out, sweep.recipe, sweep.metric, sweep.goal, [(p.name, p.params) for p in sweep.points], sweep.sha256)
    if sweep.optuna:  # its points are known once run: the spec is rewritten with them
        code, sweep = _optuna(sweep, out, points=points, force=force, allow_outside=allow_outside, log=log,
                              recipe_file=recipe_file, on_error=on_error)
        write_spec(out, sweep.recipe, sweep.metric, sweep.goal, [(p.name, p.params) for p in sweep.points],
                   sweep.sha256)
        chosen, total = sweep.points, sweep.trials
    else:
        code = run_points(sweep, out, points=points, force=force, allow_outside=allow_outside, log=log,
                          recipe_file=recipe_file, on_error=on_error)
        chosen = sweep.points[:points] if points else sweep.points
        total = len(sweep.points)
    facts = summarize(out, sweep.recipe, sweep.metric, sweep.goal, [(p.name, p.params) for p in chosen],
                      sweep.sha256)
    best = next((r for r in facts["points"] if r["name"] == facts["best"]), None)
    if best:
        log(f"\nbest point: {best['name']} ({', '.join(f'{k} = {v}' for k, v in best['params'].items())}): "
            f"{sweep.metric} {best['value']:.4g}")
    else:
        log("\nno point finished with its gates passed")
    log(f"sweep: {out / 'sweep.md'}")
    if code == INTERRUPTED:
        return code
    if len(chosen) < total:  # the best of a partial sweep is not the sweep's choice
        log(f"ran {len(chosen)} of {total} points: nothing registered until every point has run")
    else:
        register(sweep, out, facts, register_which, log)
    if any(r["status"] != "done" for r in facts["points"]):
        return 1
    return 0 if best else 3
