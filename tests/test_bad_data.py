"""The bad-data corpus (tests/data/bad/, see generate.py) end to end, and row conservation.

- every malformed file, declared by a generated recipe, fails `ftlang check --data` with a
  diagnostic naming that file and the expected line (the data helper's tests/test_data_validate.py
  covers the same corpus through the Python API);
- under `on_error = skip(max = 100%)` nothing is lost: read = kept + skipped, and the quarantine
  records the same line;
- through whole pipelines with skip, dedupe and filter: read = kept + skipped + deduped + filtered.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from plan_factory import make_plan, source, step, write_jsonl

BAD = Path(__file__).parent / "data" / "bad"
EXPECTED: dict[str, dict] = json.loads((BAD / "expected.json").read_text())
REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 400,
    "max_position_embeddings": 512, "tie_word_embeddings": False,
}


def test_corpus_is_complete():
    files = {p.name for p in BAD.iterdir()} - {"expected.json", "generate.py"}
    assert files == set(EXPECTED), files ^ set(EXPECTED)
    assert len(files) >= 30
    kinds = {c["kind"] for c in EXPECTED.values()}
    assert {"jsonl", "json", "csv", "parquet"} <= kinds


# ---------------------------------------------------------------------------- end to end: check --data


def _has_check_data() -> bool:
    try:
        mod = importlib.import_module("ftlang.commands.check")
    except ModuleNotFoundError:
        return False
    import argparse

    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    return any("--data" in a.option_strings for a in p._actions)


def _ft_string(s: str) -> str:
    return json.dumps(s)


def recipe_for(name: str, case: dict) -> str:
    kind = case["kind"]
    opts = [f"format = {case['format']}"]
    if case["fields"]:
        opts.append("fields { " + ", ".join(f"{k} = {_ft_string(v)}" for k, v in case["fields"].items()) + " }")
    if case.get("max_row_chars"):
        opts.append(f"max_row_chars = {case['max_row_chars']}")
    return f"""recipe bad {{
  model = local("models/tiny")
  data d = {kind}("data/{name}") {{ {", ".join(opts)} }}
  dataset train = d
  split train {{ validation = 10% }}
  method lora {{ r = 8, alpha = 16, targets = [q_proj, v_proj] }}
  train {{ lr = 2e-4, epochs = 1, batch = 2 }}
  eval {{ metrics = [perplexity], gate perplexity < 100 }}
}}
"""


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("badproj")
    (root / ".git").mkdir()
    (root / "models" / "tiny").mkdir(parents=True)
    (root / "models" / "tiny" / "config.json").write_text(json.dumps(TINY_CONFIG))
    shutil.copytree(BAD, root / "data", ignore=shutil.ignore_patterns("*.py", "expected.json"))
    return root


@pytest.mark.skipif(not _has_check_data(), reason="`ftlang check --data` not built yet (semantic/data helpers)")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_data_names_file_and_line(cli_project, name):
    case = EXPECTED[name]
    recipe = cli_project / f"{Path(name).stem}.ft"
    recipe.write_text(recipe_for(name, case))
    proc = subprocess.run([sys.executable, "-m", "ftlang", "check", "--data", "--format", "json", recipe.name],
                          cwd=cli_project, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    diags = json.loads(proc.stdout)
    errors = [d for d in diags if d["severity"] == "error" and d["file"] and Path(d["file"]).name == name]
    assert errors, f"no error names {name}: {diags}"
    first = min(errors, key=lambda d: d["line"] or 0)
    if case["line"] is not None:
        assert first["line"] == case["line"], first
    assert any(m.lower() in first["message"].lower() for m in case["message"]), first
    assert first["code"].startswith("FT6") and first["help"], first


# ---------------------------------------------------------------------------- conservation per source


@pytest.mark.parametrize("name", sorted(n for n, c in EXPECTED.items() if c["line"] is not None))
def test_skip_quarantines_every_bad_row_and_keeps_the_rest(project, name):
    from ftlang.data.validate import load_source

    case = EXPECTED[name]
    (project / "data").mkdir(exist_ok=True)
    shutil.copy(BAD / name, project / "data" / name)
    extra = {k: v for k, v in case.items() if k == "max_row_chars"}
    plan = make_plan(project, data={"d": source("d", f"data/{name}", kind=case["kind"], format=case["format"],
                                                fields=case["fields"], on_error={"mode": "skip", "max_fraction": 1.0},
                                                **extra)})
    rows = load_source(plan, "d")
    if rows.fatal is not None:  # the rest of the file is unreadable: the stop is reported, not hidden
        assert rows.fatal.span.line == case["line"]
        return
    assert rows.read == len(rows.rows) + len(rows.quarantined), name
    assert len(rows.problems) == len(rows.quarantined)
    assert case["line"] in {q["line"] for q in rows.quarantined}
    kept_lines = {r["_meta"]["line"] for r in rows.rows}
    assert not kept_lines & {q["line"] for q in rows.quarantined}


# ---------------------------------------------------------------------------- conservation per pipeline


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pipeline_conservation(project, seed):
    """read = kept + skipped + deduped + filtered, checked against counts the generator knows."""
    import random

    from ftlang.data.steps import PipelineRunner
    from ftlang.plan import CallExpr, CompareExpr, ConstExpr, NameExpr

    rng = random.Random(seed)
    lines, bad, dup, short = [], 0, 0, 0
    for i in range(300):
        r = rng.random()
        if r < 0.1:
            lines.append('{"instruction": "broken", "output": ')
            bad += 1
        elif r < 0.25:
            lines.append(json.dumps({"instruction": "dup", "output": "same answer"}))
            dup += 1
        elif r < 0.35:
            lines.append(json.dumps({"instruction": f"q{i}", "output": "ab"}))  # filtered: len(output) <= 3
            short += 1
        elif r < 0.40:
            lines.append(json.dumps({"instruction": f"q{i}", "output": ""}))  # skipped: empty field
            bad += 1
        else:
            lines.append(json.dumps({"instruction": f"q{i}", "output": f"a long answer {i}"}))
    (project / "data").mkdir(exist_ok=True)
    (project / "data" / "d.jsonl").write_text("\n".join(lines) + "\n")
    expr = CompareExpr(op=">", left=CallExpr(fn="len", args=[NameExpr(name="output")]), right=ConstExpr(value=3))
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_fraction": 0.5})},
                     pipelines={"train": ("d", [step("dedupe", mode="exact"), step("filter", expr=expr),
                                                step("to_chat", system="Be brief.")])},
                     split=None)
    runner = PipelineRunner(plan, log=lambda _: None)
    ds = runner.run("train")
    src, pipe = runner.source_stats("d"), ds.stats
    read, kept = src["read"], pipe["output"]
    assert read == 300
    assert (src["skipped"], pipe["deduped"], pipe["filtered"]) == (bad, max(dup - 1, 0), short)
    assert read == kept + src["skipped"] + pipe["deduped"] + pipe["filtered"], (src, pipe)
    assert src["conservation"] and pipe["conservation"]
    assert len(ds.rows) == kept and all(r["messages"][0]["role"] == "system" for r in ds.rows)
    # every kept row still knows its file line, and no line is both kept and quarantined
    kept_lines = {r["_meta"]["line"] for r in ds.rows}
    assert not kept_lines & {q["line"] for q in runner.sources["d"].quarantined}


def test_write_jsonl_helper_roundtrip(tmp_path):
    # plan_factory's writer is what the pipeline tests rely on to build inputs
    p = write_jsonl(tmp_path / "x.jsonl", [{"a": 1}, {"a": 2}])
    assert [json.loads(x) for x in p.read_text().splitlines()] == [{"a": 1}, {"a": 2}]
