"""`ftlang data preview|stats` on a plan file (no tokenizer needed), and the stats module."""

from __future__ import annotations

import json

from plan_factory import make_plan, source, step, write_jsonl

from ftlang.cli import main
from ftlang.data.stats import dataset_report, distinct_n


def _plan_file(project):
    rows = [{"instruction": f"How do I fix error {i}?", "output": f"Restart step {i % 4}."} for i in range(30)]
    write_jsonl(project / "data" / "d.jsonl", rows + rows[:3])
    plan = make_plan(project, pipelines={"train": ("d", [step("dedupe", mode="exact"), step("to_chat", system="S")])})
    path = project / "plan.json"
    path.write_text(plan.to_json())
    return path


def test_stats_writes_json_report(project, capsys):
    out = project / "stats.json"
    assert main(["data", "stats", str(_plan_file(project)), "--json", str(out), "--no-tokenizer"]) == 0
    report = json.loads(out.read_text())
    train = report["datasets"]["train"]
    assert report["sources"]["d"] == {**report["sources"]["d"], "read": 33, "kept": 33, "skipped": 0}
    assert report["pipelines"]["train"]["deduped"] == 3 and train["rows"] == 30
    assert train["length"]["unit"] == "whitespace" and train["length"]["p50"] > 0
    assert "under 1,000 rows" in train["quantity"]["guidance"]
    assert 0 < train["diversity"]["distinct_2"] <= 1 and train["instruction_diversity"]["unique_ratio"] == 1.0
    assert "report written to" in capsys.readouterr().out


def test_preview_shows_rows_after_every_step(project, capsys):
    assert main(["data", "preview", str(_plan_file(project)), "-n", "1", "--no-tokenizer"]) == 0
    out = capsys.readouterr().out
    assert "dataset train = d: 33 rows (instruction)" in out
    assert "| dedupe(mode=exact): 30 rows" in out and "| to_chat(system=S): 30 rows (chat)" in out


def test_preview_marks_masked_text(project, tiny_llama_dir):
    from transformers import AutoTokenizer

    from ftlang.data.preview import preview

    write_jsonl(project / "data" / "d.jsonl", [{"instruction": "Hi?", "output": "Hello."}])
    plan = make_plan(project, split=None)
    lines = preview(plan, AutoTokenizer.from_pretrained(str(tiny_llama_dir)), 1)
    text = "\n".join(lines)
    assert "[[<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n]]Hello.<|im_end|>" in text.replace("\n  ", "\n")


def test_bad_data_exits_1_with_file_line(project, capsys):
    write_jsonl(project / "data" / "d.jsonl", [{"instruction": "q", "output": "a"}, {"instruction": "q"}])
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl")})
    (project / "plan.json").write_text(plan.to_json())
    assert main(["data", "stats", str(project / "plan.json"), "--no-tokenizer"]) == 1
    err = capsys.readouterr().err
    assert "d.jsonl:2" in err and "FT603" in err


def test_distinct_n_and_report_duplicates():
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n(["a b c"], 2) == 1.0
    rows = [{"text": "Same thing"}, {"text": "same  thing!"}, {"text": "other"}]
    rep = dataset_report("x", rows, "completion", None, None)
    assert rep["duplicates"] == {"exact": 0, "normalized": 1}


def test_stats_read_a_dataset_batch_by_batch(monkeypatch):
    """dataset_report keeps digests and lengths per row, not the rows: batch boundaries change nothing, and
    distinct-n reads at most DIVERSITY_ROWS evenly spaced rows (the report says how many)."""
    from ftlang.data import stats

    rows = [{"text": f"row {i % 50} says things"} for i in range(200)]
    full = stats.dataset_report("x", rows, "completion", None, None)
    assert full["duplicates"]["exact"] == 200 - 50 and full["diversity"]["rows"] == 200
    assert full["length"]["max"] == 4 and full["length"]["unit"] == "whitespace"
    monkeypatch.setattr(stats, "BATCH_ROWS", 7)
    assert stats.dataset_report("x", rows, "completion", None, None) == full
    monkeypatch.setattr(stats, "DIVERSITY_ROWS", 40)
    sampled = stats.dataset_report("x", rows, "completion", None, None)
    assert sampled["diversity"]["rows"] == 40
    assert {k: v for k, v in sampled.items() if k not in ("diversity", "instruction_diversity")} == \
        {k: v for k, v in full.items() if k not in ("diversity", "instruction_diversity")}
