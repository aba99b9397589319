"""The resource estimator: exact trainable counts per method, documented memory formulas."""

from __future__ import annotations

import pytest
from test_cards import CARDS

from ftlang.plan import (
    AdapterMethod,
    FullMethod,
    HardwarePlan,
    Ia3Method,
    LoraMethod,
    PrefixMethod,
    PromptMethod,
    QloraMethod,
    QuantSpec,
    TrainPlan,
)
from ftlang.semantic.cards import linear_params, total_params
from ftlang.semantic.resources import activation_bytes, estimate, resources_plan, trainable_params

ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
ALL = ATTN + ["gate_proj", "up_proj", "down_proj"]


def test_lora_llama2_7b_attention_r16() -> None:
    assert trainable_params(CARDS["llama2_7b"], LoraMethod(r=16, targets=ATTN)) == 16_777_216


def test_lora_counts_gqa_kv_dims() -> None:
    # llama3.1 8b: k/v project 4096 → 1024 (8 kv heads of 128)
    per_layer = 16 * (4096 + 4096) * 2 + 16 * (4096 + 1024) * 2
    assert trainable_params(CARDS["llama31_8b"], LoraMethod(r=16, targets=ATTN)) == per_layer * 32


def test_lora_all_linear_smollm2() -> None:
    c = CARDS["smollm2_135m"]  # 576 hidden, kv 3·64 = 192, 1536 intermediate, 30 layers
    per = 8 * ((576 + 576) * 2 + (576 + 192) * 2 + (576 + 1536) * 3)
    assert trainable_params(c, LoraMethod(r=8, targets=ALL)) == per * 30
    dora = trainable_params(c, LoraMethod(r=8, targets=["q_proj"], dora=True))
    assert dora == (8 * (576 + 576) + 576) * 30


def test_lora_gpt2_counts_both_c_proj() -> None:
    per = 4 * (768 + 768) + 4 * (3072 + 768)  # attention c_proj and MLP c_proj
    assert trainable_params(CARDS["gpt2"], LoraMethod(r=4, targets=["c_proj"])) == per * 12


def test_prefix_prompt_ia3_adapter_full() -> None:
    c = CARDS["llama31_8b"]
    assert trainable_params(c, PrefixMethod(virtual_tokens=20)) == 32 * 2 * 1024 * 20
    assert trainable_params(c, PromptMethod(virtual_tokens=8)) == 8 * 4096
    ia3 = Ia3Method(targets=["k_proj", "v_proj", "down_proj"], feedforward=["down_proj"])
    assert trainable_params(c, ia3) == (1024 + 1024 + 14336) * 32
    ad = AdapterMethod(bottleneck=64, placement=["attention", "ffn"])
    assert trainable_params(c, ad) == (2 * 4096 * 64 + 64 + 4096) * 2 * 32
    assert trainable_params(c, FullMethod()) == total_params(c)


def test_full_fp32_is_16_bytes_and_mixed_18() -> None:
    c = CARDS["gpt2"]
    p = total_params(c)
    e32 = estimate(c, FullMethod(), TrainPlan(precision="fp32"), HardwarePlan()).memory
    assert e32.weights_bytes + e32.gradients_bytes + e32.optimizer_bytes == 16 * p
    e16 = estimate(c, FullMethod(), TrainPlan(precision="bf16"), HardwarePlan()).memory
    assert e16.weights_bytes + e16.gradients_bytes + e16.optimizer_bytes == 18 * p


def test_lora_frozen_base_2_bytes_plus_16_per_trainable() -> None:
    c = CARDS["llama2_7b"]
    m = LoraMethod(r=16, targets=ATTN)
    e = estimate(c, m, TrainPlan(precision="bf16"), HardwarePlan()).memory
    t, p = 16_777_216, total_params(c)
    assert e.weights_bytes + e.gradients_bytes + e.optimizer_bytes == 2 * p + 16 * t


@pytest.mark.parametrize("double, bits", [(True, 4.127), (False, 4.5)])
def test_qlora_nf4_bits(double: bool, bits: float) -> None:
    c = CARDS["llama2_7b"]
    m = QloraMethod(r=16, targets=ATTN, quant=QuantSpec(double_quant=double))
    e = estimate(c, m, TrainPlan(precision="bf16"), HardwarePlan()).memory
    q = linear_params(c)
    assert e.weights_bytes == int(q * bits / 8) + (total_params(c) - q) * 2 + 4 * 16_777_216


def test_activations_formula_and_checkpointing() -> None:
    c = CARDS["llama2_7b"]
    s, b, h, a, L = 2048, 4, 4096, 32, 32
    full = activation_bytes(c, s, b, False, "bf16")
    assert full == int(L * s * b * h * (34 + 5 * a * s / h))
    ckpt = activation_bytes(c, s, b, True, "bf16")
    assert ckpt == int(L * 2 * s * b * h + s * b * h * (34 + 5 * a * s / h))
    assert ckpt < full / 5
    assert activation_bytes(c, s, b, False, "fp32") == 2 * full


def test_logits_and_peak() -> None:
    c = CARDS["llama2_7b"]
    t = TrainPlan(batch=4, max_seq_len=2048, precision="bf16", gradient_checkpointing=True)
    e = estimate(c, QloraMethod(targets=ATTN), t, HardwarePlan()).memory
    assert e.logits_bytes == 4 * 2048 * 32000 * 4
    assert e.peak_bytes == (e.weights_bytes + e.gradients_bytes + e.optimizer_bytes + e.activations_bytes
                            + e.logits_bytes)


def test_fsdp_shards_ddp_does_not() -> None:
    c = CARDS["llama2_7b"]
    t = TrainPlan(precision="bf16", gradient_checkpointing=True)
    one = estimate(c, FullMethod(), t, HardwarePlan(count=4, strategy="ddp")).memory
    four = estimate(c, FullMethod(), t, HardwarePlan(count=4, strategy="fsdp")).memory
    assert four.weights_bytes == -(-one.weights_bytes // 4)
    assert four.optimizer_bytes == -(-one.optimizer_bytes // 4)
    assert four.activations_bytes == one.activations_bytes


def test_fits_against_device_memory() -> None:
    c = CARDS["llama2_7b"]
    t = TrainPlan(precision="bf16")
    small = resources_plan(c, FullMethod(), t, HardwarePlan(gpu="A100-40GB", memory_bytes=40 * 2**30))
    assert not small.fits and small.device_memory_bytes == 40 * 2**30
    assert resources_plan(c, FullMethod(), t, HardwarePlan()).fits  # no hardware declared
