"""Gates: pass/fail, the table, gates.json, and FT801/FT802 at the gate's recipe line."""

from __future__ import annotations

import json
import math

import pytest
from eval_support import gate

from ftlang.backend.gates import check_gates, environment, table, write_gates
from ftlang.diagnostics import DiagnosticError


def test_gates_pass_and_fail_with_table(tmp_path):
    env = environment({"perplexity": 11.2, "rouge_l": 0.30}, overfitting=False, forgetting=0.05)
    results = check_gates([gate("perplexity < 12", 5), gate("rouge_l >= 0.35 and not overfitting", 6),
                           gate("forgetting < 0.1", 7)], env)
    assert [r.passed for r in results] == [True, False, True]
    assert results[0].threshold == "< 12" and results[0].value == "perplexity=11.2"
    assert "overfitting=false" in results[1].value and "rouge_l=0.3" in results[1].value
    text = table(results)
    assert "PASS" in text and "FAIL" in text and "perplexity < 12" in text
    path = write_gates(tmp_path, results, env, forced=False)
    data = json.loads(path.read_text())
    assert data["passed"] is False and len(data["gates"]) == 3 and data["inputs"]["forgetting"] == 0.05
    assert not list(tmp_path.glob(".*tmp*"))


def test_gate_on_missing_metric_is_ft801_at_gate_line():
    env = environment({"perplexity": 3.0}, overfitting=False, forgetting=None)
    with pytest.raises(DiagnosticError) as e:
        check_gates([gate("perplexity < 12", 4), gate("rouge_l >= 0.3", 9), gate("forgetting < 0.1", 11)], env)
    diags = e.value.diagnostics
    assert [d.code for d in diags] == ["FT801", "FT801"]
    assert [d.span.line for d in diags] == [9, 11]
    assert "rouge_l" in diags[0].message and diags[0].help
    assert "forgetting on" in diags[1].help


def test_nan_metric_is_ft802():
    with pytest.raises(DiagnosticError) as e:
        check_gates([gate("perplexity < 12", 3)], environment({"perplexity": math.nan}, False, None))
    assert e.value.diagnostics[0].code == "FT802"


def test_no_gates_table():
    assert "none" in table([])


def test_declared_but_unmeasurable_metric_says_so():
    env = environment({"perplexity": 3.0}, overfitting=False, forgetting=None)
    with pytest.raises(DiagnosticError) as e:
        check_gates([gate("rouge_l >= 0.3", 9)], env, declared=["perplexity", "rouge_l"])
    assert "not measurable" in e.value.diagnostics[0].message
