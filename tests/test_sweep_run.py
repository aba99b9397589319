"""`ftlang run` of a recipe with a sweep: a 2×2 grid on the tiny Llama, every point an ordinary run under
the sweep directory, the comparison files, registration of the selected point only, `--points`, and a
rerun that only summarizes."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

RECIPE = """\
param lr = 5e-3
param rank = 4
recipe tiny_sweep {
  model = local("models/tiny-llama")
  data d = chat_jsonl("data/chat.jsonl")
  dataset train = d
  split train { validation = 20%, seed = 0 }
  method lora { r = rank, targets = [q_proj, v_proj] }
  train { lr = lr, max_steps = 2, batch = 4, seed = 0 }
  eval {
    metrics = [perplexity]
    gate perplexity < 100000
  }
  export {
    register "tiny-sweep" { registry = "registry/" }
  }
  sweep {
    grid { lr = [1e-3, 5e-3], rank = [2, 4] }
    select = min(perplexity)
  }
}
"""


def ftlang(*argv: str) -> tuple[int, str, str]:
    from ftlang.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def _project(root: Path, tiny_llama_dir: Path) -> Path:
    shutil.copytree(tiny_llama_dir, root / "models" / "tiny-llama")
    (root / "data").mkdir()
    with open(root / "data" / "chat.jsonl", "w") as f:
        for i in range(20):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"question {i % 5}"},
                                             {"role": "assistant", "content": f"answer {i % 3}"}]}) + "\n")
    (root / "recipe.ft").write_text(RECIPE)
    return root


@pytest.mark.slow
def test_grid_runs_every_point_and_registers_the_best(project, tiny_llama_dir, monkeypatch):
    root = _project(project, tiny_llama_dir)
    monkeypatch.chdir(root)
    out = root / "runs" / "sweep"
    rc, _, err = ftlang("run", "recipe.ft", "--out", str(out), "--points", "1")
    assert rc == 0, err[-3000:]
    assert (out / "p0" / "run.json").is_file() and not (out / "p1").exists()
    assert json.loads((out / "sweep.json").read_text())["finished"] == 1

    rc, _, err = ftlang("run", "recipe.ft", "--out", str(out))
    assert rc == 0, err[-3000:]
    assert "p0 (lr = 1e-3, rank = 2): finished, skipped" in err
    facts = json.loads((out / "sweep.json").read_text())
    assert [p["params"] for p in facts["points"]] == [
        {"lr": 1e-3, "rank": 2}, {"lr": 1e-3, "rank": 4}, {"lr": 5e-3, "rank": 2}, {"lr": 5e-3, "rank": 4}]
    rows = facts["points"]
    assert all(r["status"] == "done" and r["gates_passed"] and r["value"] > 0 for r in rows)
    best = min(rows, key=lambda r: r["value"])
    assert facts["best"] == best["name"]
    # every point is an ordinary run of its own plan: the recipe with --set for its values, less register
    from ftlang.semantic.check import check_file
    from ftlang.semantic.sweep import point_plan

    for r in rows:
        stored = json.loads((out / r["name"] / "plan.json").read_text())
        alone = check_file(root / "recipe.ft", sets={k: str(v) for k, v in r["params"].items()}).plan
        assert stored["sha256"] == point_plan(alone).sha256 == r["plan_hash"]
        assert (out / r["name"] / "report.json").is_file()
    md = (out / "sweep.md").read_text()
    assert f"Best point: **{best['name']}**" in md
    html = (out / "sweep.html").read_text()
    assert html.count("<svg") == 2 and "perplexity against rank" in html
    # only the selected point was registered
    manifests = list((root / "registry" / "tiny-sweep").glob("v*/manifest.json"))
    assert len(manifests) == 1
    assert json.loads(manifests[0].read_text())["plan_hash"] == best["plan_hash"]

    rc, _, err = ftlang("run", "recipe.ft", "--out", str(out))  # a rerun only summarizes
    assert rc == 0 and err.count("finished, skipped") == 4 and "registered" not in err
    assert len(list((root / "registry" / "tiny-sweep").glob("v*/manifest.json"))) == 1
