"""Validation of data rows: every malformed file names the right file and line (torch-free)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from plan_factory import make_plan, source, write_jsonl

from ftlang.data.validate import check_plan_data, enforce, load_source
from ftlang.diagnostics import DiagnosticError, Severity

BAD = Path(__file__).parent / "data" / "bad"
EXPECTED = json.loads((BAD / "expected.json").read_text())


def _plan_for(project: Path, name: str, case: dict, **kw):
    (project / "data").mkdir(exist_ok=True)
    shutil.copy(BAD / name, project / "data" / name)
    extra = {k: v for k, v in case.items() if k not in ("kind", "format", "fields", "line", "message")}
    return make_plan(project, data={"d": source("d", f"data/{name}", kind=case["kind"], format=case["format"],
                                                fields=case["fields"], **extra, **kw)})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_names_file_and_line(project, name):
    case = EXPECTED[name]
    diags = [d for d in check_plan_data(_plan_for(project, name, case)) if d.severity is Severity.ERROR]
    assert diags, f"{name}: no error"
    first = diags[0]
    assert first.code.startswith("FT6")
    assert first.span is not None and Path(first.span.file).name == name
    if case["line"] is not None:
        assert first.span.line == case["line"], first.message
    assert any(m.lower() in first.message.lower() for m in case["message"]), first.message
    assert any("recipe.ft:3" in n for n in first.notes), first.notes  # the recipe line that declared it


def test_good_rows_have_no_problems(project):
    write_jsonl(project / "data" / "d.jsonl", [{"instruction": f"q{i}", "output": "a", "input": ""}
                                               for i in range(5)])
    assert check_plan_data(make_plan(project)) == []


def test_fail_lists_twenty_then_counts(project):
    rows = [{"instruction": "q"}] * 25 + [{"instruction": "q", "output": "a"}]
    write_jsonl(project / "data" / "d.jsonl", rows)
    diags = check_plan_data(make_plan(project))
    errors = [d for d in diags if d.severity is Severity.ERROR]
    assert len(errors) == 20 and [d.span.line for d in errors] == list(range(1, 21))
    assert any("5 more" in d.message for d in diags)


def test_skip_within_limit_quarantines(project):
    rows = [{"instruction": "q", "output": "a"}] * 9 + [{"instruction": "q", "output": ""}]
    write_jsonl(project / "data" / "d.jsonl", rows)
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_fraction": 0.1})})
    loaded = load_source(plan, "d")
    warnings = enforce(plan, loaded)
    assert len(loaded.rows) == 9 and loaded.quarantined[0]["line"] == 10
    assert "empty" in loaded.quarantined[0]["reason"] and loaded.quarantined[0]["raw"].startswith("{")
    assert [w.severity for w in warnings] == [Severity.WARNING]


def test_skip_over_limit_fails(project):
    rows = [{"instruction": "q", "output": "a"}] * 8 + [{"instruction": "q", "output": ""}] * 2
    write_jsonl(project / "data" / "d.jsonl", rows)
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_rows": 1})})
    with pytest.raises(DiagnosticError) as e:
        enforce(plan, load_source(plan, "d"))
    assert any(d.code == "FT610" and "over the skip limit" in d.message for d in e.value.diagnostics)


def test_path_outside_root_refused(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "x.jsonl"
    write_jsonl(outside, [{"instruction": "q", "output": "a"}])
    plan = make_plan(project, data={"d": source("d", str(outside))})
    diags = check_plan_data(plan)
    assert diags[0].code == "FT619" and "escapes the project root" in diags[0].message
    assert diags[0].span.file == "recipe.ft" and diags[0].span.line == 3
    assert load_source(plan, "d", allow_outside=True).rows


def test_sharegpt_and_field_mapping(project):
    write_jsonl(project / "data" / "s.jsonl", [{"conversations": [{"from": "system", "value": "Be brief"},
                                                                  {"from": "human", "value": "Hi"},
                                                                  {"from": "gpt", "value": "Hello"}]}])
    plan = make_plan(project, data={"s": source("s", "data/s.jsonl", format="chat")})
    rows = load_source(plan, "s").rows
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]


def test_check_data_is_torch_free():
    import subprocess
    import sys

    code = ("import sys, ftlang.data.validate, ftlang.data.read, ftlang.data.formats; "
            "bad = [m for m in ('torch', 'transformers', 'datasets', 'nlpaug', 'peft') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
