"""`sweep { optuna { ... } }`: check and plan without optuna or torch (the space and the trial count, no
points), the ask/tell driver (backend/tpe.py) with a stand-in objective — resume, interrupt, failures —, the
FT901 message when optuna is missing, and (slow) a real study of 2 trials on the tiny Llama."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from ftlang.diagnostics import DiagnosticError, error
from ftlang.semantic.check import check_text

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sweep.ft"
OPTUNA = "optuna { lr = loguniform(1e-4, 1e-2), epochs = choice(1, 2) }  trials = 4  seed = 3"


def _checked(block: str = OPTUNA):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "grid { lr = [1e-3, 2e-3] }" in text
    return check_text(text.replace("grid { lr = [1e-3, 2e-3] }", block), EXAMPLE)


def test_optuna_sweep_checks_with_its_space_and_no_points():
    res = _checked()
    assert res.ok, [d.message for d in res.diagnostics]
    sweep = res.sweeps["sweep"]
    assert sweep.optuna and sweep.points == () and (sweep.trials, sweep.seed) == (4, 3)
    assert list(sweep.space) == ["lr", "epochs"]
    # its hash moves with the space, the trial count and the base plan, not with points it has not run
    assert _checked(OPTUNA.replace("trials = 4", "trials = 5")).sweeps["sweep"].sha256 != sweep.sha256
    assert _checked().sweeps["sweep"].sha256 == sweep.sha256
    # a trial's plan is the recipe checked with --set for its values
    assert sweep.plan_point({"lr": "0.0005", "epochs": "2"}).train.epochs == 2
    with pytest.raises(DiagnosticError) as e:
        sweep.plan_point({"lr": "0.0005", "epochs": "0"})
    assert e.value.diagnostics[0].code == "FT241" and "--set epochs=0" in e.value.diagnostics[0].help


def test_optuna_sweep_problems():
    res = _checked(OPTUNA.replace("  trials = 4", ""))
    assert any(d.code == "FT240" and "an optuna sweep needs `trials = N`" in d.message for d in res.diagnostics)
    res = _checked(OPTUNA.replace("loguniform(1e-4, 1e-2)", "loguniform(0, 1e-2)"))
    assert any(d.code == "FT240" and "loguniform" in d.message for d in res.diagnostics)


def test_plan_lists_the_space_and_trials_without_importing_optuna(tmp_path, capsys, monkeypatch):
    from ftlang.cli import main

    monkeypatch.setitem(sys.modules, "optuna", None)  # `plan` must not need it
    text = EXAMPLE.read_text(encoding="utf-8").replace("grid { lr = [1e-3, 2e-3] }", OPTUNA)
    path = EXAMPLE.parent / "_optuna_plan_test.ft"  # next to the example: its data paths resolve
    path.write_text(text, encoding="utf-8")
    try:
        assert main(["plan", str(path)]) == 0
        out = json.loads(capsys.readouterr().out)["sweep"]
        assert out["optuna"] == {"sampler": "TPE", "seed": 3, "trials": 4, "space": {
            "lr": {"distribution": "loguniform", "args": [1e-4, 1e-2]},
            "epochs": {"distribution": "choice", "args": [1, 2]}}}
        assert out["points"] == [] and "not known before the run" in out["note"] and out["totals"]["points"] == 4
        assert main(["plan", str(path), "--sweep-jobs", str(tmp_path / "jobs")]) == 2
        assert "cannot be written as jobs" in capsys.readouterr().err
    finally:
        path.unlink()


def _objective(calls: list, interrupt_at: int | None = None, fail_at: int | None = None):
    def run(point):
        calls.append(point)
        n = int(point.name[1:])
        if n == interrupt_at:
            return 130, None
        if n == fail_at:
            raise DiagnosticError(error("FT241", "does not check", None))
        lr = float(point.sets["lr"])
        assert 1e-4 <= lr <= 1e-2 and point.params["epochs"] in (1, 2) and point.sets["epochs"] in ("1", "2")
        return 0, (math.log10(lr) + 3) ** 2 + point.params["epochs"]  # best near lr = 1e-3, epochs = 1
    return run


def test_driver_asks_tells_and_resumes_its_study(tmp_path):
    pytest.importorskip("optuna")
    from optuna.trial import TrialState

    from ftlang.backend.tpe import JOURNAL, open_study, run_study

    sweep = _checked().sweeps["sweep"]
    errors: list = []
    calls: list = []
    code, points = run_study(sweep, tmp_path, _objective(calls, fail_at=1), limit=3, log=lambda m: None,
                             on_error=errors.append)
    assert code == 0 and [p.name for p in points] == ["p0", "p1", "p2"] and len(calls) == 3
    assert len(errors) == 1 and (tmp_path / JOURNAL).is_file()
    states = [t.state for t in open_study(sweep, tmp_path).trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]

    # a rerun loads the study: only the missing trial is asked for; an interrupt leaves it running
    calls.clear()
    code, points = run_study(sweep, tmp_path, _objective(calls, interrupt_at=3), limit=None, log=lambda m: None,
                             on_error=errors.append)
    assert code == 130 and [p.name for p in calls] == ["p3"] and len(points) == 4
    study = open_study(sweep, tmp_path)
    assert study.trials[3].state == TrialState.RUNNING
    # … and the next run resumes that trial with the same values, then stops at `trials`
    calls.clear()
    code, points = run_study(sweep, tmp_path, _objective(calls), limit=None, log=lambda m: None,
                             on_error=errors.append)
    assert code == 0 and [p.name for p in calls] == ["p3"] and calls[0].params == points[3].params
    study = open_study(sweep, tmp_path)
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 3
    assert study.best_trial.number in (0, 2, 3)
    calls.clear()
    assert run_study(sweep, tmp_path, _objective(calls), limit=None, log=lambda m: None,
                     on_error=errors.append)[0] == 0 and calls == []


def test_the_seed_fixes_the_trials(tmp_path):
    pytest.importorskip("optuna")
    from ftlang.backend.tpe import run_study

    sweep = _checked().sweeps["sweep"]
    runs = []
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        runs.append(run_study(sweep, tmp_path / d, _objective([]), limit=None, log=lambda m: None,
                              on_error=lambda e: None)[1])
    assert [p.params for p in runs[0]] == [p.params for p in runs[1]] and len(runs[0]) == 4


def test_missing_optuna_is_ft901_naming_the_extra(tmp_path, monkeypatch):
    import importlib.metadata

    from ftlang import environment
    from ftlang.backend.tpe import open_study

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    # the extras as this checkout declares them (pyproject.toml), whatever the installed metadata says
    monkeypatch.setattr(importlib.metadata, "requires", not_installed)
    environment.requirements.cache_clear()
    monkeypatch.setitem(sys.modules, "optuna", None)
    try:
        with pytest.raises(ImportError) as e:
            open_study(_checked().sweeps["sweep"], tmp_path)
        d = environment.missing_dependency(e.value, "run")
    finally:
        environment.requirements.cache_clear()
    assert d.code == "FT901" and "needs the `optuna` extra" in d.message and "ftlang[optuna]" in d.help


def _tiny_recipe() -> str:
    """test_sweep_run's tiny recipe with a 2-trial optuna study in place of its grid."""
    from tests.test_sweep_run import RECIPE

    grid = "grid { lr = [1e-3, 5e-3], rank = [2, 4] }"
    assert grid in RECIPE
    return RECIPE.replace(grid, "optuna { lr = loguniform(1e-4, 1e-2), rank = choice(2, 4) }\n    trials = 2\n"
                          "    seed = 0")


@pytest.mark.slow
def test_optuna_study_runs_trials_on_the_tiny_llama(project, tiny_llama_dir, monkeypatch):
    pytest.importorskip("optuna")
    from optuna.trial import TrialState

    from ftlang.backend.tpe import open_study
    from tests.test_sweep_run import _project, ftlang

    root = _project(project, tiny_llama_dir)
    (root / "recipe.ft").write_text(_tiny_recipe())
    monkeypatch.chdir(root)
    out = root / "runs" / "sweep"
    rc, _, err = ftlang("run", "recipe.ft", "--out", str(out))
    assert rc == 0, err[-3000:]
    facts = json.loads((out / "sweep.json").read_text())
    rows = facts["points"]
    assert [r["name"] for r in rows] == ["p0", "p1"]
    assert all(r["status"] == "done" and r["value"] > 0 and 1e-4 <= r["params"]["lr"] <= 1e-2 for r in rows)
    assert facts["best"] == min(rows, key=lambda r: r["value"])["name"]
    # every trial is an ordinary run of the recipe with --set for its values; the study knows its result
    from ftlang.semantic.check import check_file
    from ftlang.semantic.sweep import point_plan

    sweep = check_file(root / "recipe.ft").sweeps["tiny_sweep"]
    study = open_study(sweep, out)
    for r, t in zip(rows, study.trials, strict=True):
        assert t.state == TrialState.COMPLETE and t.value == pytest.approx(r["value"])
        alone = check_file(root / "recipe.ft", sets={"lr": repr(t.params["lr"]), "rank": str(t.params["rank"])})
        assert json.loads((out / r["name"] / "plan.json").read_text())["sha256"] == point_plan(alone.plan).sha256
    assert len(list((root / "registry" / "tiny-sweep").glob("v*/manifest.json"))) == 1
    rc, _, err = ftlang("run", "recipe.ft", "--out", str(out))  # the study is complete: only a summary
    assert rc == 0 and "sweep point" not in err and "registered" not in err
