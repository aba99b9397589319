"""The stages after training: evaluate → verdicts → gates → export → registry → report.

`ftlang run` calls `before_training(ctx)` once the model is built (baseline metrics of the base
model) and `after_training(ctx)` when training ends; the latter returns the process exit code:
0, or 3 when a gate failed (then nothing is exported or registered unless ctx.force, which is
recorded in gates.json, the registry manifest and the report).

Files written in the run dir: eval.json (metrics before/after, verdicts, gates, export, registry),
gates.json, export/, report.json, report.md, report.html.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftlang.atomic import write_json
from ftlang.backend import evaluate as E
from ftlang.backend import metrics as M
from ftlang.backend.context import RunContext
from ftlang.backend.gates import GateResult, check_gates, environment, table, write_gates
from ftlang.diagnostics import DiagnosticError

GATE_FAILED = 3
FORGETTING_KEY = "forgetting_perplexity"  # baseline_metrics key: the base model's perplexity on the general set


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def _base_view(model: Any):
    """The model with its adapter switched off (PEFT), so the base is measured without a reload."""
    if hasattr(model, "disable_adapter") and hasattr(model, "peft_config"):
        with model.disable_adapter():
            yield model
    else:
        yield model


def _forgetting_rows(ctx: RunContext) -> list | None:
    name = ctx.plan.eval.forgetting_on
    if not name:
        return None
    extra = ctx.data.extra or {}
    rows = extra.get(name)
    return list(rows) if rows is not None else None


def _baseline_metric_names(ctx: RunContext) -> list[str]:
    """Non-generation metrics always; generation metrics only when at most 64 rows are generated
    (a small validation set, or max_samples), so the baseline stays affordable."""
    wanted = list(ctx.plan.eval.metrics)
    cap = ctx.plan.eval.max_samples
    rows = len(ctx.data.validation_rows or ())
    if min(cap if cap is not None else rows, rows) > 64:
        wanted = [m for m in wanted if m not in M.GENERATION_METRICS]
    return wanted


def before_training(ctx: RunContext) -> None:
    """Baseline metrics of the not-yet-trained model on the validation and forgetting sets."""
    t0 = time.perf_counter()
    plan = ctx.plan
    # an untrained LoRA/IA3/bottleneck adapter is already the identity, but prefix/prompt tuning is not
    with _base_view(ctx.model) as model:
        if ctx.data.validation:
            ctx.baseline_metrics.update(E.evaluate_model(plan, model, ctx.tokenizer, ctx.data,
                                                         _baseline_metric_names(ctx)))
        rows = _forgetting_rows(ctx)
        if rows and plan.model.task.kind == "causal_lm":
            ctx.baseline_metrics[FORGETTING_KEY] = E.perplexity_on(model, ctx.tokenizer, rows)
        ctx.baseline_samples = E.sample_answers(plan, model, ctx.tokenizer, ctx.data)
    ctx.timings["baseline_eval"] = round(time.perf_counter() - t0, 3)


def _tuned_forgetting(ctx: RunContext) -> tuple[float | None, float | None, float | None]:
    """(base ppl, tuned ppl, relative increase) on the general set, or Nones when not declared."""
    rows = _forgetting_rows(ctx)
    if not rows or ctx.plan.model.task.kind != "causal_lm":
        return None, None, None
    tuned = E.perplexity_on(ctx.model, ctx.tokenizer, rows)
    base = ctx.baseline_metrics.get(FORGETTING_KEY)
    if base is None:
        if hasattr(ctx.model, "peft_config") and hasattr(ctx.model, "disable_adapter"):
            with _base_view(ctx.model) as model:
                base = E.perplexity_on(model, ctx.tokenizer, rows)
        elif ctx.load_base is not None:
            base_model = ctx.load_base()
            base = E.perplexity_on(base_model, ctx.tokenizer, rows)
            del base_model
    if base is None:
        return None, tuned, None
    return base, tuned, E.forgetting(base, tuned)


def _samples(ctx: RunContext) -> list[dict]:
    """Held-out prompts with the base model's answer (when measured before training), the tuned one
    and the reference, side by side."""
    base = {s["prompt"]: s["answer"] for s in ctx.baseline_samples}
    return [{"prompt": s["prompt"], "base": base.get(s["prompt"]), "tuned": s["answer"], "reference": s["reference"]}
            for s in E.sample_answers(ctx.plan, ctx.model, ctx.tokenizer, ctx.data)]


def selected_checkpoint(ctx: RunContext) -> dict[str, Any]:
    """Which weights the gates read and the export ships: the final ones, or with
    `select = best(val_loss)` those of the evaluation with the lowest validation loss (the Trainer
    reloaded that checkpoint at the end of training; the first of equal losses, like the Trainer)."""
    steps = [int(r["step"]) for r in ctx.history if isinstance(r.get("step"), (int, float))]
    final = {"select": "final", "step": max(steps) if steps else None}
    if ctx.plan.eval.select == "final":
        return final
    evals = [r for r in ctx.history if isinstance(r.get("val_loss"), (int, float)) and math.isfinite(r["val_loss"])]
    if not evals:
        return {**final, "select": ctx.plan.eval.select, "note": "no validation loss was logged: final weights"}
    best = min(evals, key=lambda r: r["val_loss"])
    return {"select": ctx.plan.eval.select, "step": int(best["step"]), "val_loss": float(best["val_loss"]),
            "final_step": final["step"]}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def metrics_table(before: dict[str, float], after: dict[str, float]) -> str:
    names = list(dict.fromkeys([*after, *before]))
    rows = [("metric", "before", "after", "delta")]
    for n in names:
        b, a = before.get(n), after.get(n)
        d = (a - b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        rows.append((n, _fmt(b), _fmt(a), ("+" if d is not None and d >= 0 else "") + _fmt(d) if d is not None else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _clean(d: dict) -> dict:
    """JSON-safe: NaN/inf become None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def after_training(ctx: RunContext) -> int:
    """Evaluate, judge, gate, export, register and report; returns 0 or 3 (a failed gate)."""
    plan = ctx.plan
    run_dir = Path(ctx.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"plan_hash": plan.sha256, "forced": False, "force_flag": bool(ctx.force), "exit_code": 0}
    t0 = time.perf_counter()
    try:
        after = E.evaluate_model(plan, ctx.model, ctx.tokenizer, ctx.data)
        overfit = E.overfitting(ctx.history, plan.eval.overfitting_patience)
        base_ppl, tuned_ppl, forget = _tuned_forgetting(ctx)
        summary["samples"] = _samples(ctx)
        summary["checkpoint"] = selected_checkpoint(ctx)
        if ctx.plan.eval.select != "final":
            c = summary["checkpoint"]
            _log(f"checkpoint: {c['select']} → step {c['step']} of {c.get('final_step')}"
                 + (f" (val_loss {c['val_loss']:.4f})" if "val_loss" in c else ""))
        ctx.timings["eval"] = round(time.perf_counter() - t0, 3)
        summary.update(
            metrics_before=_clean(dict(ctx.baseline_metrics)), metrics_after=_clean(after),
            overfitting=overfit, forgetting=forget, forgetting_on=plan.eval.forgetting_on,
            forgetting_perplexity={"base": base_ppl, "tuned": tuned_ppl},
        )
        before_shown = {k: v for k, v in ctx.baseline_metrics.items() if k != FORGETTING_KEY}
        _log("\nmetrics (base model → tuned):\n" + metrics_table(before_shown, after))
        verdict = f"overfitting: {'yes' if overfit else 'no'}"
        if forget is not None:
            verdict += f"   forgetting on {plan.eval.forgetting_on}: {forget:+.1%} perplexity ({base_ppl:.3f} → {tuned_ppl:.3f})"
        _log(verdict)

        env = environment(after, overfit, forget)
        declared = [*plan.eval.metrics, *(["forgetting"] if plan.eval.forgetting_on else [])]
        results: list[GateResult] = check_gates(list(plan.eval.gates), env, declared=declared)
        failed = [r for r in results if not r.passed]
        write_gates(run_dir, results, env, forced=bool(failed and ctx.force))
        summary["gates"] = [r.__dict__ for r in results]
        _log("\ngates:\n" + table(results))
        summary["gates_passed"] = not failed
        summary["forced"] = bool(failed and ctx.force)  # --force only counts when it overrode a failed gate
        if failed and not ctx.force:
            summary["exit_code"] = GATE_FAILED
            summary["export"] = None
            summary["registry"] = None
            _log(f"\n{len(failed)} gate(s) failed: nothing exported or registered (rerun with --force to override)")
            return GATE_FAILED
        if failed:
            _log(f"\n{len(failed)} gate(s) failed; exporting anyway because of --force (recorded)")
        gate_dicts = [{"text": r.text, "passed": r.passed, "value": r.value, "threshold": r.threshold} for r in results]
        t1 = time.perf_counter()
        from ftlang.backend.export import export

        exported = export(ctx, _clean(after), gate_dicts, forced=bool(failed))
        ctx.timings["export"] = round(time.perf_counter() - t1, 3)
        summary["export"] = {"dir": str(exported.dir), "artifacts": sorted(exported.artifacts()), "checks": exported.checks}
        _log(f"exported: {exported.dir}")
        if plan.export.registry is not None:
            summary["registry"] = _publish(ctx, exported, _clean(after), gate_dicts, bool(failed))
            _log(f"registered: {summary['registry']['name']} {summary['registry']['version']} "
                 f"({summary['registry']['stage']}) in {summary['registry']['dir']}")
        if plan.export.push:
            from ftlang.backend.push import push_folder, push_to_hub

            summary["push"] = push_to_hub(plan, push_folder(exported))
            _log(f"pushed: {summary['push']['folder']} → {summary['push']['repo']}")
        return 0
    except DiagnosticError as e:
        summary["error"] = [f"{d.code}: {d.message}" for d in e.diagnostics]
        summary["exit_code"] = 1
        raise
    finally:
        ctx.timings.setdefault("eval", round(time.perf_counter() - t0, 3))
        write_json(run_dir / "eval.json", summary, sort_keys=True, default=str)
        _report(ctx, summary)


def _publish(ctx: RunContext, exported: Any, metrics: dict, gates: list[dict], forced: bool) -> dict:
    return publish(ctx.plan, ctx.plan.export.registry, Path(ctx.run_dir), dict(exported.artifacts()),
                   dict(ctx.data.fingerprints or {}), metrics, gates, forced)


def publish(plan: Any, spec: Any, run_dir: Path, artifacts: dict[str, Path], data_hashes: dict[str, str],
            metrics: dict, gates: list[dict], forced: bool) -> dict:
    """Register a finished run's exported artifacts under `spec` (a RegistrySpec): the run's own registration,
    and a sweep's registration of its selected point (backend/sweep.py)."""
    from ftlang.registry import Registry

    reg_dir = plan.resolve(spec.dir)
    artifacts = dict(artifacts)
    for extra in ("plan.json", "gates.json"):
        if (run_dir / extra).is_file():
            artifacts[extra] = run_dir / extra
    from ftlang.backend.export import base_name

    version = Registry(reg_dir).publish(
        spec.name, artifacts, plan_hash=plan.sha256, data_hashes=data_hashes,
        metrics=metrics, gates=gates, stage=spec.stage,
        extra={"forced": forced, "recipe": plan.recipe.name, "method": plan.method.kind, "base": base_name(plan),
               "run_dir": str(run_dir)},
    )
    return {"name": spec.name, "version": version, "stage": spec.stage, "dir": str(reg_dir)}


def _report(ctx: RunContext, summary: dict) -> None:
    """The report never hides the run's outcome: a failure to render is logged, not raised."""
    try:
        from ftlang.report import build

        paths = build.write_report(ctx, summary)
        _log(f"report: {paths[1]}")
    except Exception as e:  # noqa: BLE001 - the run's result must survive a broken report
        if os.environ.get("FTLANG_DEBUG"):
            raise
        _log(f"warning: the report could not be written: {type(e).__name__}: {e}")
