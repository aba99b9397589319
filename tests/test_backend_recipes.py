"""Every method block of LANGUAGE.md, put in place of `method lora { … }` in a small recipe on the tiny
Llama, trains from the recipe through `ftlang run` (in process) and leaves a complete run directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from backend_helpers import _QA  # noqa: E402

from ftlang.cli import main  # noqa: E402

RECIPE = """\
recipe tiny {{
  model = local("models/tiny")
  data d = chat_jsonl("data/chat.jsonl")
  dataset train = d
  split train {{ validation = 10% }}
  {method}
  train {{ lr = {lr}, max_steps = 4, batch = 4, seed = 0, logging_steps = 1{train_extra} }}
  hardware {{ device = cpu }}
  eval {{ every = end, metrics = [perplexity], gate perplexity < 1000000 }}
}}
"""

# (method block exactly as LANGUAGE.md writes it, lr, artifact folder)
METHODS = {
    "full": ("method full    { }", "2e-3", "model"),
    "lora": ("method lora    { r = 8, alpha = 16, targets = [q_proj, v_proj, gate_proj, up_proj, down_proj] }",
             "1e-2", "adapter"),
    "prefix": ("method prefix  { virtual_tokens = 20 }", "3e-2", "adapter"),
    "prompt": ('method prompt  { virtual_tokens = 8, init = text("Classify the ticket:") }', "3e-2", "adapter"),
    "adapter": ("method adapter { bottleneck = 64, placement = [attention, ffn] }", "1e-2", "adapter"),
    "ia3": ("method ia3     { targets = [k_proj, v_proj, down_proj], feedforward = [down_proj] }", "3e-2", "adapter"),
    "qlora": ("method qlora { r = 8, alpha = 16, targets = [q_proj, v_proj], "
              "quant { type = nf4, double_quant = true, compute_dtype = fp32 } }", "1e-2", "adapter"),
}
FAST = {"lora", "prefix", "prompt", "ia3"}  # full, adapter, qlora take 10-20 s here: slow


def _project(root: Path, model_dir: Path, method: str, lr: str, train_extra: str = "") -> Path:
    (root / ".git").mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, root / "models" / "tiny")
    (root / "data").mkdir()
    with open(root / "data" / "chat.jsonl", "w") as f:
        for i in range(24):
            q, a = _QA[i % len(_QA)]
            f.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n")
    recipe = root / "tiny.ft"
    recipe.write_text(RECIPE.format(method=method, lr=lr, train_extra=train_extra))
    return recipe


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in METHODS])
def test_method_trains_from_a_recipe(name, project, tiny_llama_dir, monkeypatch):
    block, lr, artifact = METHODS[name]
    recipe = _project(project, tiny_llama_dir, block, lr)
    monkeypatch.chdir(project)
    assert main(["run", str(recipe)]) == 0
    (run,) = (project / "runs" / "tiny").iterdir()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "done" and record["global_step"] == 4 and record["method"] == name
    assert run.name.startswith(record["plan_hash"][:12] + "-") and run.name.endswith("Z")
    assert (run / artifact).is_dir() and (run / "checkpoints").is_dir()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 4 and all(loss == loss for loss in losses)
    assert json.loads((run / "data.json").read_text())["train_rows"] > 0


def test_packing_bf16_and_gradient_checkpointing_train_on_the_cpu(project, tiny_llama_dir, monkeypatch):
    block = "method lora { r = 8, alpha = 16, targets = [q_proj, v_proj] }"
    extra = ", packing = true, max_seq_len = 64, precision = bf16, gradient_checkpointing = true, warmup = 25%"
    recipe = _project(project, tiny_llama_dir, block, "1e-2", extra)
    monkeypatch.chdir(project)
    assert main(["run", str(recipe)]) == 0
    (run,) = (project / "runs" / "tiny").iterdir()
    plan = json.loads((run / "plan.json").read_text())
    assert plan["train"]["packing"] and plan["train"]["precision"] == "bf16"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "loss" in r]
    assert lrs[0] < max(lrs)  # warmup ramps the lr up first


CLASSIFY = """\
recipe tiny_cls {
  model = local("models/tiny-bert")
  task = classify(labels = [billing, login, other])
  data d = jsonl("data/cls.jsonl") { format = classification, fields { text = "text", label = "label" } }
  dataset train = d
  split train { validation = 20% }
  method lora { r = 8, alpha = 16, targets = [query, value] }
  train { lr = 1e-2, max_steps = 4, batch = 4, seed = 0, logging_steps = 1, max_seq_len = 32 }
  hardware { device = cpu }
  eval { every = end, metrics = [accuracy], gate accuracy >= 0 }
}
"""


def test_classification_trains_from_a_recipe(project, tiny_bert_dir, monkeypatch):
    shutil.copytree(tiny_bert_dir, project / "models" / "tiny-bert")
    (project / "data").mkdir()
    texts = {"billing": "my invoice shows a refund", "login": "login error on my account", "other": "feature request"}
    with open(project / "data" / "cls.jsonl", "w") as f:
        for i in range(30):
            label = list(texts)[i % 3]
            f.write(json.dumps({"text": f"{texts[label]} {i}", "label": label}) + "\n")
    (project / "cls.ft").write_text(CLASSIFY)
    monkeypatch.chdir(project)
    assert main(["run", "cls.ft"]) == 0
    (run,) = (project / "runs" / "tiny_cls").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "done"
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS"
