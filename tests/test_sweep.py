"""`sweep` blocks: the points a grid spans, each checked like the recipe with `--set`, and `ftlang plan`'s
`sweep` section (every point's own plan hash and estimates)."""

from __future__ import annotations

import json
from pathlib import Path

from ftlang.semantic.check import check_file, check_text
from ftlang.semantic.sweep import point_plan

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sweep.ft"


def _variant(old: str, new: str):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    return check_text(text.replace(old, new), EXAMPLE)


def _codes(res) -> list[str]:
    return [d.code for d in res.diagnostics if d.severity.value == "error"]


def test_example_sweep_points_are_the_recipe_with_set():
    res = check_file(EXAMPLE)
    assert res.ok, _codes(res)
    sweep = res.sweeps["sweep"]
    assert [p.params for p in sweep.points] == [{"lr": 0.001}, {"lr": 0.002}]
    assert (sweep.goal, sweep.metric) == ("min", "perplexity")
    # the base recipe sets lr = 2e-3: that point's plan is the base plan, the other one is `--set lr=1e-3`,
    # both without the register block (the sweep registers only the point it selects)
    assert sweep.points[1].plan.sha256 == point_plan(res.plan).sha256
    assert sweep.points[1].plan.export.registry is None and res.plan.export.registry is not None
    alone = check_file(EXAMPLE, sets={"lr": "1e-3"})
    assert sweep.points[0].plan.sha256 == point_plan(alone.plan).sha256 != point_plan(res.plan).sha256
    assert sweep.points[0].plan.train.lr == 1e-3


def test_grid_is_the_cartesian_product_in_order():
    res = _variant("grid { lr = [1e-3, 2e-3] }", "grid { lr = [1e-3, 2e-3], epochs = [1, 2] }")
    assert res.ok, _codes(res)
    pts = res.sweeps["sweep"].points
    assert [p.name for p in pts] == ["p0", "p1", "p2", "p3"]
    assert [(p.plan.train.lr, p.plan.train.epochs) for p in pts] == [(1e-3, 1), (1e-3, 2), (2e-3, 1), (2e-3, 2)]
    assert len({p.plan.sha256 for p in pts}) == 4


def test_only_declared_params_are_swept():
    res = _variant("grid { lr = [1e-3, 2e-3] }", "grid { lrr = [1e-3, 2e-3] }")
    d = next(d for d in res.diagnostics if d.code == "FT240")
    assert "`lrr` is not a declared param" in d.message and "`lr`" in d.help
    text = EXAMPLE.read_text(encoding="utf-8").replace("grid { lr", "grid { lrr")
    assert text[d.span.start:d.span.end] == "lrr"


def test_select_names_an_eval_metric():
    res = _variant("select = min(perplexity)", "select = min(perplexty)")
    d = next(d for d in res.diagnostics if d.code == "FT240")
    assert "perplexty" in d.message and "perplexity" in d.help
    assert "FT240" in _codes(_variant("select = min(perplexity)", "select = lowest(perplexity)"))
    assert "FT240" in _codes(_variant("    select = min(perplexity)\n", ""))


def test_empty_or_non_list_grid_is_an_error():
    assert "FT240" in _codes(_variant("lr = [1e-3, 2e-3]", "lr = []"))
    assert "FT240" in _codes(_variant("lr = [1e-3, 2e-3]", "lr = 1e-3"))


def test_a_point_that_does_not_check_is_an_error_naming_it():
    res = _variant("grid { lr = [1e-3, 2e-3] }", "grid { epochs = [1, 0] }")
    d = next(d for d in res.diagnostics if d.code == "FT241")
    assert "p1 (epochs = 0)" in d.message and "--set epochs=0" in d.help
    assert [p.plan is None for p in res.sweeps["sweep"].points] == [False, True]
    assert res.plan is not None  # the base recipe itself still checks


def test_plan_prints_sweep_points_with_their_hashes(capsys):
    from ftlang.cli import main

    assert main(["plan", str(EXAMPLE)]) == 0
    out = json.loads(capsys.readouterr().out)
    sweep = out["sweep"]
    assert [p["params"] for p in sweep["points"]] == [{"lr": 0.001}, {"lr": 0.002}]
    assert sweep["points"][1]["sha256"] == point_plan(check_file(EXAMPLE).plan).sha256
    est = [p["estimates"] for p in sweep["points"]]
    assert all(e["fits"] and e["peak_bytes"] > 0 and e["seconds"] > 0 for e in est)
    assert sweep["totals"]["points"] == 2
    assert abs(sweep["totals"]["seconds"] - sum(e["seconds"] for e in est)) < 1e-6


def test_sweep_block_is_kept_by_the_formatter():
    from ftlang.syntax.format import format_text

    text = EXAMPLE.read_text(encoding="utf-8")
    assert format_text(text, str(EXAMPLE)) == (text, [])


def test_sweep_jobs_write_one_plan_per_point_and_a_slurm_array(tmp_path, capsys):
    from ftlang.cli import main
    from ftlang.plan import Plan, plan_hash

    jobs = tmp_path / "jobs"
    assert main(["plan", str(EXAMPLE), "--sweep-jobs", str(jobs)]) == 0
    script = jobs / "sweep.sbatch"
    assert capsys.readouterr().out.strip() == str(script)
    sweep = check_file(EXAMPLE).sweeps["sweep"]
    for p in sweep.points:  # each plan file is the point's sealed plan, runnable alone with `ftlang run --plan`
        plan = Plan.from_json((jobs / "plans" / f"{p.name}.json").read_text())
        assert plan.sha256 == plan_hash(plan) == p.plan.sha256
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n") and script.stat().st_mode & 0o111
    assert "#SBATCH --array=0-1\n" in text and "POINTS=(p0 p1)" in text
    assert 'ftlang run --plan "$PLAN" --out "$OUT"' in text and 'ftlang run --plan "$PLAN" --resume "$OUT"' in text
    spec = json.loads((jobs / "sweep.points.json").read_text())
    assert spec["points"] == [{"name": "p0", "params": {"lr": 0.001}}, {"name": "p1", "params": {"lr": 0.002}}]
    import subprocess

    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # the script parses


def test_report_sweep_summarizes_a_directory_filled_by_jobs(tmp_path, capsys):
    """Two points ran elsewhere (their run.json / eval.json as a run writes them): the summary selects the
    lower perplexity among points whose gates passed, and marks a failed gate."""
    from ftlang.cli import main
    from ftlang.report.sweep import write_spec

    write_spec(tmp_path, "r", "perplexity", "min", [("p0", {"lr": 1e-3}), ("p1", {"lr": 2e-3}),
                                                    ("p2", {"lr": 5e-3})], "abc")
    for name, ppl, passed in (("p0", 3.0, True), ("p1", 2.5, True), ("p2", 1.5, False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(
            {"status": "done", "exit_code": 0 if passed else 3, "timings": {"train": 10.0, "train_tokens_per_s": 145.3, "eval": 2.0}}))
        (tmp_path / name / "eval.json").write_text(json.dumps(
            {"plan_hash": name * 4, "metrics_before": {"perplexity": 9.0}, "metrics_after": {"perplexity": ppl},
             "gates": [{"text": "perplexity < 2", "passed": passed}], "gates_passed": passed}))
    assert main(["report", "sweep", str(tmp_path)]) == 0
    assert "best point: p1" in capsys.readouterr().out
    facts = json.loads((tmp_path / "sweep.json").read_text())
    assert facts["best"] == "p1" and [r["seconds"] for r in facts["points"]] == [12.0] * 3
    md = (tmp_path / "sweep.md").read_text()
    assert "Best point: **p1** (lr = 0.002): perplexity 9 → **2.5**" in md and "| FAIL |" in md
    assert "<svg" in (tmp_path / "sweep.html").read_text()
    assert main(["report", "sweep", str(tmp_path / "p0")]) == 2


RANDOM = """    random { lr = loguniform(1e-4, 1e-2), epochs = choice(1, 2) }
    trials = 5
    seed = SEED
"""


def test_random_sweep_draws_seeded_points_within_their_distributions():
    def points(seed: int):
        res = _variant("    grid { lr = [1e-3, 2e-3] }\n", RANDOM.replace("SEED", str(seed)))
        assert res.ok, [d.message for d in res.diagnostics if d.severity.value == "error"]
        return res.sweeps["sweep"].points

    a, b, c = points(0), points(0), points(1)
    assert [p.params for p in a] == [p.params for p in b] != [p.params for p in c]
    assert len(a) == 5 and [p.name for p in a] == ["p0", "p1", "p2", "p3", "p4"]
    for p in a:  # each point's plan holds the drawn values, as `--set` would give them
        assert 1e-4 <= p.params["lr"] <= 1e-2 and p.params["epochs"] in (1, 2)
        assert p.plan.train.lr == p.params["lr"] and p.plan.train.epochs == p.params["epochs"]


def test_random_sweep_problems():
    bad = {"lr = loguniform(1e-4, 1e-2)": "lr = loguniform(0, 1e-2)",
           "epochs = choice(1, 2)": "epochs = choice()",
           "    trials = 5\n": "",
           "random { lr": "random { lrx"}
    for old, new in bad.items():
        res = _variant("    grid { lr = [1e-3, 2e-3] }\n", RANDOM.replace("SEED", "0").replace(old, new))
        assert "FT240" in _codes(res), (old, new)
