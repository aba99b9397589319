"""Every method trains a few steps on a tiny model: the loss falls, and the saved result reloads to
identical logits. Causal LM on the tiny Llama; sequence classification on the tiny BERT."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import cls_data, lm_data, tiny_plan  # noqa: E402

from ftlang.backend.artifacts import artifact_name, load_trained, save_trained  # noqa: E402
from ftlang.backend.context import RunContext  # noqa: E402
from ftlang.backend.load import load_tokenizer  # noqa: E402
from ftlang.backend.methods import load_for_training, trainable_parameters  # noqa: E402
from ftlang.backend.train import seed_everything, train  # noqa: E402
from ftlang.diagnostics import DiagnosticError  # noqa: E402
from ftlang.plan import (  # noqa: E402
    AdapterMethod,
    FullMethod,
    Ia3Method,
    LoraMethod,
    PrefixMethod,
    PromptMethod,
    QloraMethod,
    QuantSpec,
)

LM_METHODS = {
    "full": (FullMethod(), 2e-3),
    "lora": (LoraMethod(r=8, alpha=16, dropout=0.1, targets=["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]), 1e-2),
    "dora_rslora": (LoraMethod(r=4, alpha=8, targets=["q_proj", "v_proj"], dora=True, rslora=True), 1e-2),
    "qlora": (QloraMethod(r=8, alpha=16, targets=["q_proj", "k_proj", "v_proj", "o_proj"],
                          quant=QuantSpec(type="nf4", double_quant=True, compute_dtype="fp32")), 1e-2),
    "qlora_fp4": (QloraMethod(r=8, alpha=16, targets=["q_proj", "v_proj"],
                              quant=QuantSpec(type="fp4", double_quant=False, compute_dtype="bf16")), 1e-2),
    "prefix": (PrefixMethod(virtual_tokens=6), 3e-2),
    "prompt": (PromptMethod(virtual_tokens=4, init_text="Answer the question:"), 3e-2),
    "ia3": (Ia3Method(targets=["k_proj", "v_proj", "down_proj"], feedforward=["down_proj"]), 3e-2),
    "adapter": (AdapterMethod(bottleneck=16, placement=["attention", "ffn"]), 1e-2),
}


def _mean_loss(model, prepared) -> float:
    model.eval()
    batch = prepared.collator()(prepared.train)
    with torch.no_grad():
        return float(model(**batch).loss)


def _logits(model, prepared) -> torch.Tensor:
    model.eval()
    batch = prepared.collator()(prepared.train[:4])
    batch.pop("labels")
    with torch.no_grad():
        return model(**batch).logits.float()


def _train_and_reload(plan, prepared, tmp_path):
    tok = load_tokenizer(plan)
    seed_everything(plan)
    model = load_for_training(plan)
    trainable, total = trainable_parameters(model)
    assert 0 < trainable <= total
    before = _mean_loss(model, prepared)
    result = train(RunContext(plan=plan, run_dir=tmp_path / "run", model=model, tokenizer=tok, data=prepared, log=lambda s: None), tty=False)
    after = _mean_loss(model, prepared)
    assert result.global_step == plan.train.max_steps
    saved = save_trained(plan, model, tok, tmp_path / "run")
    assert saved.name == artifact_name(plan) and saved.is_dir()
    reloaded = load_trained(plan, saved)
    return before, after, _logits(model, prepared), _logits(reloaded, prepared), model


@pytest.mark.parametrize("name", list(LM_METHODS))
def test_method_trains_and_reloads_causal_lm(name, tiny_llama_dir, tmp_path):
    method, lr = LM_METHODS[name]
    plan = tiny_plan(tiny_llama_dir, method, train={"lr": lr, "max_steps": 8})
    prepared = lm_data(load_tokenizer(plan))
    before, after, logits, reloaded, model = _train_and_reload(plan, prepared, tmp_path)
    assert after < before, f"{name}: loss did not fall ({before:.4f} -> {after:.4f})"
    # 4-bit weights are re-quantized on reload from the same base: identical; others exactly equal
    assert torch.max(torch.abs(logits - reloaded)).item() <= 1e-5


def test_adapter_refuses_merge_and_saves_only_adapter(tiny_llama_dir, tmp_path):
    from safetensors.torch import load_file

    plan = tiny_plan(tiny_llama_dir, AdapterMethod(bottleneck=8, placement=["ffn"]), train={"max_steps": 2})
    tok = load_tokenizer(plan)
    model = load_for_training(plan)
    saved = save_trained(plan, model, tok, tmp_path)
    keys = load_file(str(saved / "adapter_model.safetensors")).keys()
    assert keys and all(".ftlang_adapter." in k for k in keys)
    assert len(keys) == 2 * 4  # 2 layers x (down, up) x (weight, bias)
    with pytest.raises(DiagnosticError) as e:
        model.merge_and_unload()
    assert e.value.diagnostics[0].code == "FT302"


CLS_METHODS = {
    "lora": (LoraMethod(r=8, alpha=16, targets=["query", "value"]), 1e-2),
    "full": (FullMethod(), 1e-3),
    "adapter": (AdapterMethod(bottleneck=16, placement=["attention", "ffn"]), 1e-2),
    "ia3": (Ia3Method(targets=["key", "value", "dense"], feedforward=[]), 3e-2),
}


@pytest.mark.parametrize("name", list(CLS_METHODS))
def test_method_trains_and_reloads_classifier(name, tiny_bert_dir, tmp_path):
    method, lr = CLS_METHODS[name]
    plan = tiny_plan(tiny_bert_dir, method, classify=["billing", "login", "other"],
                     train={"lr": lr, "max_steps": 10})
    prepared = cls_data(load_tokenizer(plan))
    before, after, logits, reloaded, model = _train_and_reload(plan, prepared, tmp_path)
    assert logits.shape[-1] == 3
    assert model.config.id2label[1] == "login" if hasattr(model, "config") else True
    assert after < before, f"{name}: loss did not fall ({before:.4f} -> {after:.4f})"
    assert torch.max(torch.abs(logits - reloaded)).item() <= 1e-5


def test_paged_optimizer_refused_on_cpu(tiny_llama_dir):
    from ftlang.backend.methods import optimizer_name

    plan = tiny_plan(tiny_llama_dir, LoraMethod(targets=["q_proj"]), train={"optimizer": "paged_adamw_8bit"})
    with pytest.raises(DiagnosticError) as e:
        optimizer_name(plan, "cpu")
    d = e.value.diagnostics[0]
    assert d.code == "FT703" and "CUDA" in d.message and "adamw" in d.help
    assert optimizer_name(plan, "cuda") == "paged_adamw_8bit"


def test_full_model_resave_from_a_fresh_copy(tiny_llama_dir, tmp_path):
    # the path used when a GGUF-loaded model refuses save_pretrained
    from transformers import AutoModelForCausalLM

    from ftlang.backend.artifacts import _resave_fresh

    plan = tiny_plan(tiny_llama_dir, FullMethod())
    model = load_for_training(plan)
    with torch.no_grad():
        model.lm_head.weight.add_(0.5)
    _resave_fresh(model, tmp_path / "m")
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)
