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
