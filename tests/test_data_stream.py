"""hf_dataset(..., streaming = true): compiled from recipe text, read batch by batch (offline, a dataset saved
with `datasets`), hash-split, tokenized as it streams, and trained on a tiny model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

pytest.importorskip("datasets")
pytest.importorskip("transformers")

RECIPE = """
recipe streamed {
  model = local("models/tiny")
  data web = hf_dataset("data/hfds", split = "train", streaming = true) {
    format = instruction
    on_error = skip(max = 5)
  }
  dataset train = web | dedupe(exact) | filter(len(output) > 3) | to_chat(system = "Be brief.")
  split train { validation = 20%, seed = 1 }
  method lora { r = 4, alpha = 8, targets = [q_proj, v_proj] }
  train { lr = 1e-2, max_steps = 2, batch = 2, max_seq_len = 128, packing = true, logging_steps = 1 }
}
"""


def _rows() -> list[dict]:
    rows = [{"instruction": f"What is {i} times {i}?", "input": "", "output": f"It is {i * i}, exactly."}
            for i in range(40)]
    rows += rows[:5]  # exact duplicates: deduped across the stream's batches
    rows.append({"instruction": "short", "input": "", "output": "no"})  # filtered out
    rows.append({"instruction": "broken", "input": "", "output": None})  # row 47: quarantined, names its line
    return rows


def _compile(project: Path, tiny_llama_dir: Path, recipe: str = RECIPE):
    import datasets

    from ftlang.semantic.check import check_file

    shutil.copytree(tiny_llama_dir, project / "models" / "tiny")
    datasets.Dataset.from_list(_rows()).save_to_disk(str(project / "data" / "hfds"))
    (project / "r.ft").write_text(recipe)
    res = check_file(project / "r.ft")
    assert res.plan is not None, [f"{d.code} {d.message}" for d in res.diagnostics]
    return res.plan


def test_streamed_hf_dataset_prepares_and_trains(project, tiny_llama_dir, monkeypatch):
    from transformers import AutoTokenizer

    from ftlang.backend.context import RunContext
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.train import train
    from ftlang.data import stream
    from ftlang.data.prepare import prepare

    plan = _compile(project, tiny_llama_dir)
    assert plan.data["web"].hf_streaming
    monkeypatch.setattr(stream, "BATCH_ROWS", 8)  # six batches: dedupe and the split work across them
    tok = AutoTokenizer.from_pretrained(str(project / "models" / "tiny"))
    lines: list[str] = []
    p = prepare(plan, tok, run_dir=project / "runs" / "r1", log=lines.append)
    st = p.stats
    assert st["sources"]["web"] == {**st["sources"]["web"], "read": 47, "kept": 46, "skipped": 1}
    pipe = st["pipelines"]["train"]
    assert pipe["streamed"] and pipe["input"] == 46 and pipe["deduped"] == 5 and pipe["filtered"] == 1
    assert pipe["output"] == 40 and st["conservation"]
    split = st["split"]
    assert split["method"] == "hash" and split["stream"] and split["train"] + split["validation"] == 40
    assert 0 < split["validation"] < 20 and any("hash split" in x for x in lines)
    assert st["tokens"]["train"]["rows_in"] == split["train"] and len(p.validation_rows) == split["validation"]
    assert p.packed and sum(len(b["seq_lens"]) for b in p.train) == split["train"]
    q = [json.loads(x) for x in (project / "runs" / "r1" / "quarantine.jsonl").read_text().splitlines()]
    assert [(r["source"], r["line"], r["code"]) for r in q] == [("web", 47, "FT604")]
    again = prepare(plan, tok, log=lambda _m: None)
    assert again.cache_hit and again.train == p.train  # same data, same seed: the same hash split

    model = load_for_training(plan)
    ctx = RunContext(plan=plan, run_dir=project / "runs" / "r1", model=model, tokenizer=tok, data=p,
                     log=lambda _m: None)
    result = train(ctx, tty=False)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert result.global_step == 2 and losses and all(math.isfinite(x) for x in losses)


def test_a_stream_that_needs_all_its_rows_is_read_whole(project, tiny_llama_dir):
    from transformers import AutoTokenizer

    from ftlang.data.prepare import prepare

    plan = _compile(project, tiny_llama_dir, RECIPE.replace("| filter(len(output) > 3)", "| sample(n = 20, seed = 0)"))
    tok = AutoTokenizer.from_pretrained(str(project / "models" / "tiny"))
    lines: list[str] = []
    p = prepare(plan, tok, log=lines.append)
    assert any("read whole, not streamed: step sample(...)" in x for x in lines)
    assert "streamed" not in p.stats["pipelines"]["train"] and p.stats["split"].get("method") is None
    assert p.stats["conservation"] and p.stats["sources"]["web"]["read"] == 47


def test_a_stream_holds_out_its_first_rows(project, tiny_llama_dir, monkeypatch):
    from transformers import AutoTokenizer

    from ftlang.data import stream
    from ftlang.data.formats import to_chat
    from ftlang.data.prepare import prepare

    plan = _compile(project, tiny_llama_dir, RECIPE.replace("validation = 20%, seed = 1", "first = 12"))
    assert plan.datasets.split.first == 12 and plan.datasets.split.validation is None
    monkeypatch.setattr(stream, "BATCH_ROWS", 8)  # the first 12 rows span two batches
    tok = AutoTokenizer.from_pretrained(str(project / "models" / "tiny"))
    lines: list[str] = []
    p = prepare(plan, tok, log=lines.append)
    split = p.stats["split"]
    assert (split["method"], split["first"], split["stream"]) == ("first", 12, True)
    assert (split["validation"], split["train"]) == (12, 28) and split["conservation"] and p.stats["conservation"]
    assert any("its validation split is the first 12 rows: 12 of 40 rows held out" in x for x in lines)
    # the held-out rows are the stream's first 12 (in order), as the steps made them
    want = [to_chat(r, "instruction", "Be brief.") for r in _rows()[:12]]
    assert [r["messages"] for r in p.validation_rows] == [w["messages"] for w in want]
    assert p.stats["tokens"]["train"]["rows_in"] == 28


def test_head_bounds_a_stream(project, tiny_llama_dir, monkeypatch):
    """head(n) is full after the batch that fills it: the rest of the stream is never read."""
    from transformers import AutoTokenizer

    from ftlang.data import stream
    from ftlang.data.prepare import prepare

    plan = _compile(project, tiny_llama_dir, RECIPE.replace('to_chat(system = "Be brief.")',
                                                           'head(10) | to_chat(system = "Be brief.")'))
    monkeypatch.setattr(stream, "BATCH_ROWS", 8)  # head(10) fills in the second batch of 8
    tok = AutoTokenizer.from_pretrained(str(project / "models" / "tiny"))
    lines: list[str] = []
    p = prepare(plan, tok, log=lines.append)
    pipe, src = p.stats["pipelines"]["train"], p.stats["sources"]["web"]
    assert pipe["streamed"] and pipe["stopped_after"] == 16 and src["read"] == 16 and src["conservation"]
    assert (pipe["input"], pipe["output"], pipe["sampled_out"]) == (16, 10, 6) and pipe["conservation"]
    assert p.stats["split"]["train"] + p.stats["split"]["validation"] == 10 and p.stats["conservation"]
    assert any("head(...) of the train pipeline is full after 16 rows of `web`" in x for x in lines)


def test_a_stream_with_a_replay_buffer_mixed_in_still_streams(project, tiny_llama_dir, monkeypatch):
    """mix(...) appends after the stream: the stream is read batch by batch and the replay rows follow it."""
    from transformers import AutoTokenizer

    from ftlang.data import stream
    from ftlang.data.prepare import prepare

    recipe = RECIPE.replace('  dataset train = web', '''  data replay = jsonl("data/replay.jsonl") { format = chat }
  dataset train = web''').replace('to_chat(system = "Be brief.")', 'to_chat(system = "Be brief.") | mix(replay, ratio = 20%, seed = 3)')
    plan = _compile_with_replay(project, tiny_llama_dir, recipe)
    monkeypatch.setattr(stream, "BATCH_ROWS", 8)
    tok = AutoTokenizer.from_pretrained(str(project / "models" / "tiny"))
    lines: list[str] = []
    p = prepare(plan, tok, log=lines.append)
    pipe = p.stats["pipelines"]["train"]
    assert pipe["streamed"] and not any("read whole" in x for x in lines)
    assert (pipe["input"], pipe["deduped"], pipe["filtered"], pipe["mixed"]) == (46, 5, 1, 10)  # 40 / 0.8 · 0.2
    assert pipe["output"] == 50 and pipe["conservation"] and p.stats["conservation"]
    split = p.stats["split"]
    assert split["train"] + split["validation"] == 50 and split["method"] == "hash"
    assert p.stats["tokens"]["train"]["rows_in"] == split["train"]


def _compile_with_replay(project: Path, tiny_llama_dir: Path, recipe: str):
    (project / "data").mkdir(exist_ok=True)
    replay = [{"messages": [{"role": "user", "content": f"Old question {i}?"},
                            {"role": "assistant", "content": f"Old answer {i}."}]} for i in range(6)]
    (project / "data" / "replay.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replay))
    return _compile(project, tiny_llama_dir, recipe)


def test_head_bounds_a_stream_outside_training_too(project, tiny_llama_dir, monkeypatch):
    """The pipeline runner (ftlang data stats, other datasets) stops a stream's read at a full head(n) as the train
    stream does; a local file is still read to its end."""
    from ftlang.data import steps as steps_mod
    from ftlang.data.steps import PipelineRunner

    plan = _compile(project, tiny_llama_dir, RECIPE.replace('to_chat(system = "Be brief.")',
                                                           'head(10) | to_chat(system = "Be brief.")'))
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 8)
    lines: list[str] = []
    runner = PipelineRunner(plan, log=lines.append, spill=project / "spill")
    ds = runner.run("train")
    assert len(ds.rows) == 10 and ds.stats["stopped_after"] == 16 and ds.stats["conservation"]
    assert runner.source_stats("web")["read"] == 16 and any("the rest of the stream is not read" in x for x in lines)
