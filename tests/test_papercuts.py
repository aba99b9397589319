"""First-use papercuts found by migrating real configs (issue 10): each test failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from plan_factory import make_plan, source, write_jsonl
from semantic_project import BASE, make_project, variant

from ftlang.cli import main
from ftlang.expr import to_text
from ftlang.semantic.check import check_file, check_text
from ftlang.semantic.exprs import to_expr
from ftlang.syntax.parser import parse_text

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("papercuts"), rows=1200)


def diags(proj: Path, text: str, severity: str = "ERROR") -> list:
    return [d for d in check_text(text, proj / "t.ft").diagnostics if d.severity.name == severity]


def codes(proj: Path, text: str) -> list[str]:
    return [d.code for d in diags(proj, text)]


# ---------------------------------------------------------------------------- encoding


def test_non_utf8_recipe_is_an_error_at_the_first_bad_byte(proj: Path) -> None:
    bad = proj / "latin1.ft"
    bad.write_bytes(BASE.replace("recipe base_lora", "# caf\xe9 au lait\nrecipe base_lora").encode("latin-1"))
    res = check_file(bad)
    assert [d.code for d in res.diagnostics] == ["FT017"] and res.plan is None
    span = res.diagnostics[0].span
    assert (span.line, span.column) == (1, 6)  # `# caf` then the byte 0xE9


def test_non_utf8_import_is_an_error_in_that_file(proj: Path) -> None:
    (proj / "cards_bad.ft").write_bytes(b"# ok\n# \xff\xfe\n")
    res = check_text('import "cards_bad.ft"\n' + BASE, proj / "t.ft")
    bad = [d for d in res.diagnostics if d.code == "FT017"]
    assert bad and bad[0].span.file.endswith("cards_bad.ft") and (bad[0].span.line, bad[0].span.column) == (2, 3)


# ---------------------------------------------------------------------------- nothing to train, x / 0


def test_empty_targets_is_an_error(proj: Path) -> None:
    text = BASE.replace("targets = [q_proj, v_proj]", "targets = []")
    assert codes(proj, text) == ["FT308"]
    assert codes(proj, BASE) == []


@pytest.mark.parametrize("gate", ["perplexity / 0 < 2", "perplexity / 0.0 < 2", "perplexity / zero < 2",
                                  "1 / (perplexity / 0) > 0"])
def test_gate_dividing_by_constant_zero_is_an_error(proj: Path, gate: str) -> None:
    text = "param zero = 0\n" + BASE.replace("gate perplexity < 100", "gate " + gate)
    assert codes(proj, text) == ["FT222"]


# ---------------------------------------------------------------------------- a bad value is not also missing


def test_bad_split_value_is_not_also_missing(proj: Path) -> None:
    got = diags(proj, variant("split train", "split train { validation = 100% }"))
    assert [d.code for d in got] == ["FT103"], [d.message for d in got]


def test_bad_family_is_not_also_missing(proj: Path) -> None:
    card = ('model_card tiny { source = local("models/tiny-llama"), family = bloom, hidden = 64, layers = 2, '
            "heads = 4, kv_heads = 2, intermediate = 128, vocab = 400 }\n")
    got = diags(proj, card + variant("model", "model = tiny"))
    assert "FT104" in [d.code for d in got] and not any("needs `family`" in d.message for d in got)


# ---------------------------------------------------------------------------- ftlang plan


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftlang", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("text", ["recipe r {", "recipe r { x = }", BASE.replace("epochs = 1", "epocs = 1")])
def test_plan_exits_1_on_recipe_errors(proj: Path, text: str) -> None:
    (proj / "broken.ft").write_text(text)
    assert main(["plan", str(proj / "broken.ft")]) == 1
    assert main(["check", str(proj / "broken.ft")]) == 1
    assert main(["plan", str(proj / "no_such.ft")]) == 2  # usage errors stay 2


def test_launch_cmd_is_a_function_of_the_recipe(proj: Path, monkeypatch, capsys) -> None:
    """The same command whether or not accelerate/deepspeed are installed (a light install lacks them)."""
    import importlib.util

    text = BASE.rstrip()[:-1] + '  hardware { gpu = "A100-80GB", count = 2, strategy = deepspeed }\n}\n'
    (proj / "multi.ft").write_text(text)
    assert main(["plan", str(proj / "multi.ft"), "--launch-cmd"]) == 0
    here = capsys.readouterr().out
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in ("accelerate", "deepspeed") else real(name, *a))
    assert main(["plan", str(proj / "multi.ft"), "--launch-cmd"]) == 0
    light = capsys.readouterr().out
    assert here == light and here.startswith("python -m accelerate.commands.launch --config_file ")


# ---------------------------------------------------------------------------- one precedence table


@pytest.mark.parametrize("gate", ["(perplexity + 1) * 2 > 3", "perplexity - (loss - 1) > 0",
                                  "not (perplexity < 3 or loss > 2)", "(perplexity < 3) == (loss < 2)",
                                  "perplexity / (2 * loss) < 1", "perplexity < 3 and (loss < 2 or loss > 9)",
                                  "-(perplexity + loss) < 0", "perplexity - -1 > 0", "perplexity + loss * 2 > 1"])
def test_expression_printer_keeps_parentheses(gate: str) -> None:
    ctx = SimpleNamespace(params={})

    def plan_expr(text: str):
        module, errs = parse_text(f"recipe r {{ eval {{ gate {text} }} }}")
        assert module is not None, errs
        return to_expr(ctx, module.items[0].body[0].body[0].expr, None)

    expr = plan_expr(gate)
    printed = to_text(expr)
    assert plan_expr(printed) == expr, printed  # parses back to the same expression


def test_one_precedence_table_is_shared() -> None:
    import ftlang.expr
    import ftlang.syntax.format
    import ftlang.syntax.parser
    from ftlang import operators

    for mod in (ftlang.expr, ftlang.syntax.format, ftlang.syntax.parser):
        assert mod.operators is operators
    assert "_PREC_BOOL" not in vars(ftlang.syntax.format) and "_PREC_ARITH" not in vars(ftlang.syntax.format)


# ---------------------------------------------------------------------------- data preview


def test_preview_reports_skipped_rows_and_the_quarantine_file(project: Path, capsys) -> None:
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(20)]
    write_jsonl(project / "data" / "d.jsonl", [*rows, {"instruction": "no output"}])
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_rows": 5})})
    (project / "plan.json").write_text(plan.to_json())
    assert main(["data", "preview", str(project / "plan.json"), "--no-tokenizer"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("d ("))
    assert "read 21, kept 20, skipped 1" in line and "quarantine" in line
    qfile = Path(line.split("quarantined in ")[1])
    assert qfile.is_file() and json.loads(qfile.read_text().splitlines()[0])["line"] == 21


# ---------------------------------------------------------------------------- memory units


def test_memory_without_unit_names_the_units(proj: Path) -> None:
    got = diags(proj, BASE.rstrip()[:-1] + "  hardware { memory = 24 }\n}\n")
    assert [d.code for d in got] == ["FT102"] and "GiB" in got[0].help and "GB" in got[0].help


def test_gpu_memory_in_decimal_gb_gets_a_note(proj: Path) -> None:
    notes = diags(proj, BASE.rstrip()[:-1] + "  hardware { memory = 24GB }\n}\n", "INFO")
    assert [d.code for d in notes] == ["FT410"] and "22.4GiB" in notes[0].message and "24GiB" in notes[0].help
    assert diags(proj, BASE.rstrip()[:-1] + "  hardware { memory = 24GiB }\n}\n", "INFO") == []
    assert diags(proj, BASE.rstrip()[:-1] + "  hardware { memory = 24GB, device = cpu }\n}\n", "INFO") == []


# ---------------------------------------------------------------------------- migration spellings


@pytest.mark.parametrize("line,block_line,want,tool", [
    ("train", "train { lr = 2e-4, epochs = 1, batch = 2, cutoff_len = 512 }", "max_seq_len", "LLaMA-Factory"),
    ("train", "train { lr = 2e-4, epochs = 1, batch = 2, sequence_len = 512 }", "max_seq_len", "Axolotl"),
    ("train", "train { lr = 2e-4, epochs = 1, batch = 2, num_warmup_steps = 10 }", "warmup", "torchtune"),
    ("method", "method lora { lora_rank = 8, alpha = 16, targets = [q_proj, v_proj] }", "`r`", "LLaMA-Factory"),
    ("train", "train { lr = 2e-4, epochs = 1, batch = 2, val_set_size = 0.05 }", "split train", "Axolotl"),
    ("method", "method lora { r = 8, load_in_4bit = true }", "method qlora", "Axolotl"),
    ("method", "method lora { r = 8, quantization_bit = 4 }", "method qlora", "LLaMA-Factory"),
    ("method", "method lora { r = 8, lora_target_linear = true }", "targets = all_linear", "Axolotl"),
    ("train", "train { lr = 2e-4, epochs = 1, batch = 2, lora_rank = 8 }", "method", "torchtune"),
])
def test_migration_keys_lead_to_the_fix(proj: Path, line: str, block_line: str, want: str, tool: str) -> None:
    got = diags(proj, variant(line, block_line))
    assert [d.code for d in got] == ["FT101"], [d.message for d in got]
    assert want in got[0].message + got[0].help and tool in got[0].help, (got[0].message, got[0].help)


@pytest.mark.parametrize("targets,want", [
    ("[output_proj]", "o_proj"), ("[w1, w2, w3]", "gate_proj"), ('["all-linear"]', "all_linear"),
    ("all-linear", "all_linear"), ("[q_proj, w2]", "down_proj"),
])
def test_foreign_module_names_suggest_ftlangs(proj: Path, targets: str, want: str) -> None:
    got = diags(proj, BASE.replace("targets = [q_proj, v_proj]", f"targets = {targets}"))
    assert got and f"`{want}`" in got[0].message + got[0].help, [(d.message, d.help) for d in got]
    assert "modules:" not in got[0].help  # a suggestion, not the list of every module


def test_foreign_enum_words_suggest_ftlangs(proj: Path) -> None:
    got = diags(proj, BASE.replace("batch = 2", "batch = 2, precision = bfloat16"))
    assert [d.code for d in got] == ["FT104"] and "`bf16`" in got[0].help


def test_the_alias_table_is_the_only_one() -> None:
    from ftlang.semantic import aliases, values

    assert not hasattr(values, "FOREIGN_KEYS")
    names = [a.name for a in aliases.ALIASES]
    assert len(names) == len(set(names)) and all(a.tools and (a.to or a.fix) for a in aliases.ALIASES)
