"""The LANGUAGE.md data forms, compiled from recipe text by the real checker and prepared end to end."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from plan_factory import write_jsonl

pytest.importorskip("transformers")

RECIPE = """
recipe support_bot {
  model = local("models/tiny")
  data tickets = jsonl("data/tickets.jsonl") {
    format   = instruction
    fields   { instruction = "question", input = "context", output = "answer" }
    on_error = skip(max = 10%)
  }
  data general = jsonl("data/general_chat.jsonl") { format = chat }
  data docs = csv("data/docs.csv") { format = instruction, fields { instruction = "q", output = "a" } }

  dataset train = tickets
    | dedupe(exact)
    | filter(len(output) > 0)
    | to_chat(system = "You are a helpful support agent.")
    | augment(synonyms(p = 0.1), copies = 1)
    | mix(general, ratio = 10%)
  dataset docs_probe = docs | sample(n = 3, seed = 1)
  split train { validation = 5%, seed = 42 }
  method lora { r = 8, alpha = 16, targets = [q_proj, v_proj] }
  train { lr = 2e-4, epochs = 1, batch = 2, max_seq_len = 256, packing = true }
  eval { metrics = [perplexity], forgetting on general, gate perplexity < 100 }
}
"""

TOPICS = ["password reset", "refund for an order", "login error", "slow shipping", "invoice amount", "app crash"]


def _project(project: Path, tiny_llama_dir: Path) -> Path:
    shutil.copytree(tiny_llama_dir, project / "models" / "tiny")
    rows = [{"question": f"How do I handle a {t} case {i}?", "context": f"customer {i}", "answer": f"Follow guide {i}."}
            for i, t in enumerate(TOPICS * 8)]
    rows += rows[:4]  # exact duplicates
    rows.append({"question": "broken row without an answer"})  # skipped into the quarantine
    write_jsonl(project / "data" / "tickets.jsonl", rows)
    write_jsonl(project / "data" / "general_chat.jsonl",
                [{"messages": [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": "hi"}]}
                 for i in range(10)])
    with open(project / "data" / "docs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["q", "a"])
        w.writerows([[f"doc question {i}", f"doc answer {i}"] for i in range(6)])
    (project / "support.ft").write_text(RECIPE)
    return project / "support.ft"


def test_language_data_forms_end_to_end(project, tiny_llama_dir):
    if not Path("/usr/share/wordnet/data.noun").is_file():
        pytest.skip("wordnet-base is not installed")
    from transformers import AutoTokenizer

    from ftlang.data.prepare import prepare
    from ftlang.data.validate import check_plan_data
    from ftlang.semantic.check import check_file

    res = check_file(_project(project, tiny_llama_dir))
    assert res.plan is not None, [f"{d.code} {d.message}" for d in res.diagnostics]
    plan = res.plan
    diags = check_plan_data(plan)
    assert [(d.code, d.span.line) for d in diags if d.severity.value != "info"] == [("FT603", 53)]
    tok = AutoTokenizer.from_pretrained(str(project / "models" / "tiny"))
    run_dir = project / "runs" / "r1"
    p = prepare(plan, tok, run_dir=run_dir, log=lambda _m: None)
    st = p.stats
    assert st["sources"]["tickets"] == {**st["sources"]["tickets"], "read": 53, "kept": 52, "skipped": 1}
    pipe = st["pipelines"]["train"]
    assert pipe["deduped"] == 4 and pipe["augmented"] > 0 and pipe["mixed"] > 0 and st["conservation"]
    assert p.packed and all(max(r["position_ids"]) < 256 for r in p.train)
    assert set(p.extra) == {"docs_probe", "general"} and len(p.extra["docs_probe"]) == 3
    assert all(m["role"] in ("system", "user", "assistant") for r in p.validation_rows for m in r["messages"])
    assert p.validation_rows and len(p.validation_rows) == st["split"]["validation"]
    q = [json.loads(x) for x in (run_dir / "quarantine.jsonl").read_text().splitlines()]
    assert q[0]["line"] == 53 and q[0]["source"] == "tickets"
    again = prepare(plan, tok, run_dir=project / "runs" / "r2", log=lambda _m: None)
    assert again.cache_hit and (project / "runs" / "r2" / "quarantine.jsonl").is_file()
    assert again.train == p.train
