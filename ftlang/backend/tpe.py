"""`sweep { optuna { ... } trials = N seed = S select = ... }`: TPE through Optuna, one trial at a time.

Each trial is asked of the study with the sweep's search space, becomes a point (the recipe checked with
`--set` for its values, semantic/check.py) that runs as an ordinary run into `<sweep dir>/p<trial number>/`,
and its `select` metric is told back, so the next trial is chosen from the finished ones.

The study lives in `<sweep dir>/optuna.journal` (Optuna's JournalStorage file backend: one append-only file,
no server, works offline): a rerun loads it, resumes a trial left running by an interrupt (its point resumes
from its checkpoint) and asks only for the trials still missing. A trial whose point fails or does not
finish is told FAIL (TPE ignores it) and is not retried. The sampler is seeded with `seed`; a resumed study
reseeds it, so an interrupted study need not pick the points an uninterrupted one would have.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftlang.diagnostics import DiagnosticError
from ftlang.semantic.sweep import Sweep, SweepPoint, set_text

INTERRUPTED = 130
JOURNAL = "optuna.journal"

# a point run: (exit code — INTERRUPTED stops the study —, the select metric or None when it has none)
Objective = Callable[[SweepPoint], tuple[int, float | None]]


def _distributions(sweep: Sweep) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out: dict[str, Any] = {}
    for name, call in sweep.space.items():
        if call.name == "choice":
            out[name] = CategoricalDistribution([_choice(a) for a in call.args])
        else:
            lo, hi = float(call.args[0].value), float(call.args[1].value)
            out[name] = FloatDistribution(lo, hi, log=call.name == "loguniform")
    return out


def _choice(v) -> Any:
    return v.name if hasattr(v, "name") else v.value  # an identifier choice is its name


def point_of(sweep: Sweep, number: int, params: dict[str, Any]) -> SweepPoint:
    """Trial `number`'s point: its values and the `--set` text of each."""
    sets = {}
    for name, call in sweep.space.items():
        v = params[name]
        sets[name] = (set_text(next(a for a in call.args if _choice(a) == v)) if call.name == "choice"
                      else repr(float(v)))
    return SweepPoint(f"p{number}", dict(params), sets)


def open_study(sweep: Sweep, out: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep logs each point itself
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    return optuna.create_study(storage=storage, study_name=f"ftlang-{sweep.short_hash}", load_if_exists=True,
                               direction="minimize" if sweep.goal == "min" else "maximize",
                               sampler=optuna.samplers.TPESampler(seed=sweep.seed))


def run_study(sweep: Sweep, out: Path, objective: Objective, *, limit: int | None,
              log: Callable[[str], None], on_error: Callable[[DiagnosticError], None]) -> tuple[int, list[SweepPoint]]:
    """Run trials until the study holds `trials` (or `limit`) of them; (130 when interrupted else 0, every
    trial's point in trial order)."""
    from optuna.trial import TrialState

    study = open_study(sweep, out)
    dists = _distributions(sweep)
    target = min(sweep.trials, limit) if limit else sweep.trials
    code = 0
    # a trial left running by an interrupt resumes first; then new ones are asked for
    pending = [(t.number, t.params) for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    while code != INTERRUPTED:
        if pending:
            number, params = pending.pop(0)
        elif len(study.get_trials(deepcopy=False)) < target:
            trial = study.ask(dists)
            number, params = trial.number, trial.params
        else:
            break
        point = point_of(sweep, number, params)
        log(f"\noptuna trial {number + 1}/{sweep.trials}")
        try:
            code, value = objective(point)
        except DiagnosticError as e:  # the trial does not check, or its run failed: told FAIL, the next runs
            on_error(e)
            code, value = 0, None
        if code == INTERRUPTED:
            log(f"sweep interrupted at {point.name}: rerun the same command to resume it")
            break
        ok = value is not None and math.isfinite(value)
        study.tell(number, value if ok else None, state=TrialState.COMPLETE if ok else TrialState.FAIL)
    points = [point_of(sweep, t.number, t.params) for t in study.get_trials(deepcopy=False)]
    return code, points
