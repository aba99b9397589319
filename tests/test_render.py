"""Diagnostic renderers (human, concise, json, github, sarif) and `# ftlang: ignore[...]` comments."""

from __future__ import annotations

import json

import pytest

from ftlang.diagnostics import Diagnostic, error, info, warning
from ftlang.render import FORMATS, render, summary
from ftlang.source import SourceFile
from ftlang.syntax.parser import parse
from ftlang.syntax.suppress import apply_suppressions, suppressions

SRC = SourceFile("r.ft", 'recipe r {\n\tmethod lora { r = 16, targets = [q_prj] }\n  train { lr = 2e-4 }\n}\n')


def at(text: str, line_start: int = 0) -> tuple[int, int]:
    i = SRC.text.index(text, line_start)
    return i, i + len(text)


def diags() -> list[Diagnostic]:
    s, e = at("q_prj")
    return [
        error("FT203", "no module q_prj in the card", SRC.span(s, e), "did you mean q_proj?",
              notes=("modules: q_proj, k_proj",)),
        warning("FT401", "lr 2e-4 is outside the typical range", SRC.span(*at("2e-4")), "use 1e-4..3e-4"),
        info("FT499", "multi-line", SRC.span(at("train")[0], len(SRC.text) - 1)),
    ]


def test_human_rustc_style() -> None:
    out = render(diags(), "human", sources={"r.ft": SRC})
    lines = out.splitlines()
    assert lines[0] == "error[FT203]: no module q_prj in the card"
    assert lines[1] == " --> r.ft:2:35"
    assert lines[3] == "2 |     method lora { r = 16, targets = [q_prj] }"  # tab expanded
    caret_line = lines[4]
    assert caret_line.endswith("^^^^^") and caret_line.index("^") == lines[3].index("q_prj")
    assert "  = help: did you mean q_proj?" in lines and "  = note: modules: q_proj, k_proj" in lines
    assert lines[-1] == "1 error, 1 warning, 1 info"
    assert "(the span continues to line 4)" in out
    assert "\x1b[" not in out and "\x1b[" in render(diags(), "human", color=True, sources={"r.ft": SRC})


def test_human_reads_the_file_on_disk(tmp_path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    src = SourceFile.read(data)
    d = error("FT601", "invalid JSON", src.span(9, 14), "fix the row")
    out = render([d], "human")
    assert f" --> {data}:2:1" in out and '2 | {"a":' in out and "^^^^^" in out
    data.write_text('{"a": 1}\n{"b": 22222}\n')  # edited: read again, not served from the cache
    assert '2 | {"b": 22222}' in render([d], "human")


def test_human_without_span_or_source() -> None:
    out = render([error("FT201", "no such file", None, "check the path"),
                  error("FT202", "gone", SourceFile("missing.ft", "x\n").span(0, 1))], "human")
    assert "error[FT201]: no such file" in out and "= help: check the path" in out
    assert " --> missing.ft:1:1" in out and "2 errors" in out
    assert render([], "human") == ""


def test_caret_at_end_of_file_and_long_lines() -> None:
    src = SourceFile("e.ft", "recipe r {")
    out = render([error("FT003", "unclosed", src.span(10, 10))], "human", sources={"e.ft": src})
    assert out.splitlines()[4].endswith("^") and out.splitlines()[4].index("^") == 4 + 10
    long = SourceFile("l.jsonl", "x" * 100_000 + "BAD" + "y" * 1000)
    out = render([error("FT601", "bad", long.span(100_000, 100_003))], "human", sources={"l.jsonl": long})
    shown, carets = out.splitlines()[3], out.splitlines()[4]
    assert len(shown) < 400 and shown[carets.index("^"):carets.index("^") + 3] == "BAD"


def test_concise() -> None:
    out = render(diags(), "concise").splitlines()
    assert out == ["r.ft:2:35: error[FT203]: no module q_prj in the card",
                   "r.ft:3:3: info[FT499]: multi-line",
                   "r.ft:3:16: warning[FT401]: lr 2e-4 is outside the typical range"]


def test_json_keys() -> None:
    out = json.loads(render(diags(), "json"))
    assert [set(o) for o in out] == [{"file", "line", "column", "end_line", "end_column", "code", "severity",
                                      "message", "help"}] * 3
    assert out[0] == {"file": "r.ft", "line": 2, "column": 35, "end_line": 2, "end_column": 40, "code": "FT203",
                      "severity": "error", "message": "no module q_prj in the card", "help": "did you mean q_proj?"}


def test_github_escaping() -> None:
    d = error("FT1", "50% bad\nsecond, line", SourceFile("a,b:c.ft", "x").span(0, 1), "h")
    (line,) = render([d], "github").splitlines()
    assert line == "::error file=a%2Cb%3Ac.ft,line=1,col=1,endLine=1,endColumn=2,title=FT1::50%25 bad%0Asecond, line%0Ahelp: h"
    assert render([warning("W", "w", None)], "github") == "::warning title=W::w"
    assert render([info("I", "i", None)], "github").startswith("::notice ")


def test_sarif() -> None:
    out = json.loads(render(diags(), "sarif"))
    assert out["version"] == "2.1.0"
    run = out["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["FT203", "FT499", "FT401"]
    res = run["results"][0]
    assert res["ruleId"] == "FT203" and res["level"] == "error" and run["results"][1]["level"] == "note"
    region = res["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 2, "startColumn": 35, "endLine": 2, "endColumn": 40}
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "r.ft"


def test_unknown_format() -> None:
    with pytest.raises(ValueError):
        render([], "xml")
    for fmt in FORMATS:
        assert isinstance(render([], fmt), str)


def test_summary() -> None:
    assert summary([]) == ""
    assert summary(diags() + diags()[:1]) == "2 errors, 1 warning, 1 info"


def test_syntax_error_renders_with_source() -> None:
    src = SourceFile("s.ft", "recipe r {\n  train { lr 2e-4 }\n}\n")
    _, ds = parse(src)
    out = render(ds, "human", sources={"s.ft": src})
    assert "error[FT010]" in out and "2 |   train { lr 2e-4 }" in out and "expected one of" in out


# --------------------------------------------------------------------------- suppressions


def test_suppressions_table() -> None:
    src = SourceFile("s.ft", 'a = 1  # ftlang: ignore[FT401, ft402]\n'
                             '# ftlang: ignore[FT403]\n'
                             '\n'
                             'b = "# ftlang: ignore[FT999]"\n'
                             'c = 2 # ftlang: ignore\n')
    assert suppressions(src) == {1: {"FT401", "FT402"}, 4: {"FT403"}, 5: {"*"}}


def test_apply_suppressions() -> None:
    src = SourceFile("s.ft", "a = 1  # ftlang: ignore[FT401]\nb = 2 # ftlang: ignore\nc = 3\n")
    ds = [warning("FT401", "w", src.span(0, 1)), warning("FT402", "w", src.span(0, 1)),
          warning("FT402", "w", src.span(10 + 22, 33)), error("FT101", "e", src.span(31, 33)),
          warning("FT401", "w", src.span(54, 55)), warning("FT401", "other file", SourceFile("o.ft", "a").span(0, 1))]
    kept = apply_suppressions(ds, [src])
    assert [(d.code, d.span.line) for d in kept] == [("FT402", 1), ("FT101", 2), ("FT401", 3), ("FT401", 1)]
    assert apply_suppressions(ds, {"s.ft": src}) == kept
