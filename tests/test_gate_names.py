"""Gates may read the `forgetting` verdict (a keyword elsewhere) and stand a param for a threshold."""

from __future__ import annotations

import json

from ftlang.semantic.check import check_file

RECIPE = """
param max_ppl = 50
recipe r {
  model = hf("meta-llama/Llama-2-7b-hf")
  data d = chat_jsonl("data/chat.jsonl")
  data general = chat_jsonl("data/chat.jsonl")
  dataset train = d
  split train { validation = 10% }
  method lora { r = 8, alpha = 16, targets = [q_proj, v_proj] }
  train { lr = 2e-4, epochs = 1, batch = 2 }
  eval {
    metrics = [perplexity]
    forgetting on general
    gate perplexity < max_ppl and forgetting < 10%
  }
}
"""


def _project(project):
    (project / "data").mkdir()
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    (project / "data" / "chat.jsonl").write_text(json.dumps(row) + "\n")
    (project / "r.ft").write_text(RECIPE)
    return project / "r.ft"


def test_gate_reads_forgetting_and_a_param(project):
    result = check_file(_project(project))
    assert not [d for d in result.diagnostics if d.severity.value == "error"], result.diagnostics
    gate = result.plan.eval.gates[0]
    assert gate.text == "perplexity < 50 and forgetting < 0.1"
    assert result.plan.eval.forgetting_on == "general"


def test_set_overrides_the_gate_threshold(project):
    result = check_file(_project(project), sets={"max_ppl": "20"})
    assert result.plan.eval.gates[0].text == "perplexity < 20 and forgetting < 0.1"


def test_forgetting_gate_without_forgetting_on_is_an_error(project):
    path = _project(project)
    path.write_text(RECIPE.replace("    forgetting on general\n", ""))
    errors = [d for d in check_file(path).diagnostics if d.severity.value == "error"]
    assert [d.code for d in errors] == ["FT210"] and errors[0].span.line == 13
