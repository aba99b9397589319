"""End to end on the tiny Llama, through the real CLI: recipe → data → train → eval → gates → export →
registry → report. A passing gate registers; a failing gate exits 3 and registers nothing; `report diff`
explains two runs that differ only in their seed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

RECIPE = """\
param seed = 0
recipe tiny_e2e {
  model = local("models/tiny-llama")
  data d = chat_jsonl("data/chat.jsonl")
  data general = chat_jsonl("data/general.jsonl")
  dataset train = d
  split train { validation = 20%, seed = 0 }
  method lora { r = 4, alpha = 8, targets = [q_proj, v_proj] }
  train { lr = 5e-3, max_steps = 4, batch = 4, seed = seed, logging_steps = 1 }
  eval {
    every = 2
    metrics = [perplexity, rouge_l]
    generation { max_new_tokens = 4 }
    max_samples = 2
    forgetting on general
    gate perplexity < PPL_LIMIT
    gate not overfitting
  }
  export {
    merge = true
    register "tiny" { registry = "registry/" }
  }
}
"""

QA = [("How do I reset my password?", "Open settings and choose reset."),
      ("What is the capital of France?", "Paris is the capital of France."),
      ("billing refund invoice", "account login error"),
      ("The quick brown fox?", "jumps over the lazy dog.")]


def _project(root: Path, tiny_llama_dir: Path, limit: str) -> Path:
    (root / "models").mkdir(parents=True)
    shutil.copytree(tiny_llama_dir, root / "models" / "tiny-llama")
    (root / "data").mkdir()
    with open(root / "data" / "chat.jsonl", "w") as f:
        for i in range(40):
            q, a = QA[i % 4]
            f.write(json.dumps({"messages": [{"role": "user", "content": f"{q} {i % 7}"},
                                             {"role": "assistant", "content": a}]}) + "\n")
    with open(root / "data" / "general.jsonl", "w") as f:
        for i in range(6):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"You are a helpful assistant. {i}"},
                                             {"role": "assistant", "content": "Answer the question briefly."}]}) + "\n")
    (root / "recipe.ft").write_text(RECIPE.replace("PPL_LIMIT", limit))
    return root


def ftlang(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftlang", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env=ENV)


def test_pipeline_gates_registry_and_seed_diff(project, tiny_llama_dir):
    root = _project(project, tiny_llama_dir, "100000")
    a = ftlang("run", "recipe.ft", "--out", "runs/a", cwd=root)
    assert a.returncode == 0, a.stderr[-3000:]
    assert "PASS" in a.stderr and "registered: tiny v1" in a.stderr
    run_a = root / "runs" / "a"
    for name in ("report.md", "report.html", "report.json", "gates.json", "eval.json", "export/check.json",
                 "export/adapter/adapter_model.safetensors", "export/merged/model.safetensors"):
        assert (run_a / name).is_file(), name
    manifest = json.loads((root / "registry" / "tiny" / "v1" / "manifest.json").read_text())
    assert manifest["plan_hash"] == json.loads((run_a / "plan.json").read_text())["sha256"]
    assert set(manifest["data_hashes"]) >= {"d", "general"} and "perplexity" in manifest["metrics"]
    assert "adapter/adapter_model.safetensors" in manifest["files"]
    report = json.loads((run_a / "report.json").read_text())
    assert report["history"] and any("val_loss" in r for r in report["history"])
    assert report["data"]["stats"]["sources"]["d"]["read"] == 40

    b = ftlang("run", "recipe.ft", "--set", "seed=1", "--out", "runs/b", cwd=root)
    assert b.returncode == 0, b.stderr[-3000:]
    diff = ftlang("report", "diff", "runs/a", "runs/b", cwd=root)
    assert diff.returncode == 0, diff.stderr
    assert "train.seed: 0 -> 1" in diff.stdout and "differ only in their seed" in diff.stdout
    assert "data fingerprints" not in diff.stdout

    verify = ftlang("registry", "verify", "--registry", "registry", cwd=root)
    assert verify.returncode == 0 and "2 version(s) OK" in verify.stdout
    promote = ftlang("registry", "promote", "tiny", "v2", "--stage", "production", "--registry", "registry", cwd=root)
    assert promote.returncode == 0 and "production" in promote.stdout


def test_failing_gate_exits_3_and_registers_nothing(project, tiny_llama_dir):
    root = _project(project, tiny_llama_dir, "1.0")
    res = ftlang("run", "recipe.ft", "--out", "runs/fail", cwd=root)
    assert res.returncode == 3, res.stderr[-3000:]
    assert "FAIL" in res.stderr and "nothing exported or registered" in res.stderr
    assert not (root / "registry").exists() and not (root / "runs" / "fail" / "export").exists()
    assert json.loads((root / "runs" / "fail" / "gates.json").read_text())["passed"] is False
    assert "A gate failed" in (root / "runs" / "fail" / "report.html").read_text()
    forced = ftlang("run", "recipe.ft", "--out", "runs/forced", "--force", cwd=root)
    assert forced.returncode == 0, forced.stderr[-3000:]
    manifest = json.loads((root / "registry" / "tiny" / "v1" / "manifest.json").read_text())
    assert manifest["forced"] is True
    assert json.loads((root / "runs" / "forced" / "gates.json").read_text())["forced"] is True


def test_select_best_and_the_default_logging_through_the_cli(project, tiny_llama_dir):
    """`eval { select = best(val_loss) }` from recipe text to report; the unset logging_steps logs each step."""
    root = _project(project, tiny_llama_dir, "100000")
    text = (root / "recipe.ft").read_text()
    text = text.replace("max_steps = 4, batch = 4, seed = seed, logging_steps = 1", "max_steps = 6, batch = 4, seed = seed")
    text = text.replace("    every = 2\n", "    every = 3\n    select = best(val_loss)\n").replace("merge = true", "merge = false")
    (root / "recipe.ft").write_text(text)
    r = ftlang("run", "recipe.ft", "--out", "runs/best", cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((root / "runs" / "best" / "report.json").read_text())
    vals = [(row["val_loss"], row["step"]) for row in report["history"] if "val_loss" in row]
    assert report["checkpoint"]["select"] == "best(val_loss)" and report["checkpoint"]["step"] == min(vals)[1]
    assert f"checkpoint: best(val_loss) → step {min(vals)[1]} of 6" in r.stderr
    assert [row["step"] for row in report["history"] if "loss" in row] == [1, 2, 3, 4, 5, 6]
    assert "best(val_loss)" in (root / "runs" / "best" / "report.md").read_text()
