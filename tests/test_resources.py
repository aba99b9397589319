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
from ftlang.semantic.resources import (
    Runtime,
    activation_bytes,
    estimate,
    lengths_summary,
    resources_plan,
    trainable_params,
)

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
def test_qlora_nf4_bits_and_fp32_rest(double: bool, bits: float) -> None:
    # prepare_model_for_kbit_training upcasts every non-4-bit parameter (embeddings, norms, head) to fp32
    c = CARDS["llama2_7b"]
    m = QloraMethod(r=16, targets=ATTN, quant=QuantSpec(double_quant=double))
    e = estimate(c, m, TrainPlan(precision="bf16"), HardwarePlan()).memory
    q = linear_params(c)
    assert e.weights_bytes == int(q * bits / 8 + (total_params(c) - q) * 4 + 4 * 16_777_216)


def test_sdpa_has_no_score_term_eager_does() -> None:
    c = CARDS["llama2_7b"]
    m = LoraMethod(r=16, targets=ATTN)  # dropout 0: no per-module dropout copies
    s, b, e = 2048, 4, 2
    sdpa = activation_bytes(c, m, s, b, False, e, "sdpa")
    norm = 4096 * (e + 4)  # eager: a norm keeps its fp32 upcast input and its e output
    per_token = (2 * 4096 + 2 * 4096 + 4 * 11008) * e + 2 * norm + 4 * 16 * e  # + r·e per adapted matrix
    assert sdpa == int(32 * s * b * per_token + s * b * norm + b * s * s)
    compiled = activation_bytes(c, m, s, b, False, e, "sdpa", compiled=True)  # the fp32 upcast recomputed
    assert sdpa - compiled == 65 * s * b * 4096 * (4 - e)
    # doubling s doubles the SDPA activations but for the mask; eager adds a·s²·(4 + e) per layer
    assert activation_bytes(c, m, 2 * s, b, False, e, "sdpa") - 2 * sdpa == b * (2 * s) ** 2 - 2 * b * s * s
    eager = activation_bytes(c, m, s, b, False, e, "eager")
    assert eager - sdpa == 32 * b * 32 * s * s * (4 + e)
    ckpt = activation_bytes(c, m, s, b, True, e, "sdpa")
    assert ckpt < sdpa / 5
    assert activation_bytes(c, m, s, b, False, 4, "sdpa") > 1.75 * sdpa  # the norms keep fp32 either way


def test_gemma2_runs_eager_attention() -> None:
    from ftlang.semantic.resources import runtime_of

    assert runtime_of(CARDS["gemma2_2b"], FullMethod(), TrainPlan(), HardwarePlan()).attention == "eager"
    assert runtime_of(CARDS["llama2_7b"], FullMethod(), TrainPlan(), HardwarePlan()).attention == "sdpa"


def test_lora_dropout_keeps_a_copy_per_adapted_matrix() -> None:
    c = CARDS["llama2_7b"]
    a0 = activation_bytes(c, LoraMethod(r=16, targets=ATTN, dropout=0.0), 512, 1, False, 2)
    a1 = activation_bytes(c, LoraMethod(r=16, targets=ATTN, dropout=0.1), 512, 1, False, 2)
    assert a1 - a0 == 32 * 512 * 4 * 4096 * (2 + 1)  # four adapted matrices: dropout output (e) + mask (1 B)


def test_logits_and_peak() -> None:
    c = CARDS["llama2_7b"]
    t = TrainPlan(batch=4, max_seq_len=2048, precision="bf16", gradient_checkpointing=True)
    e = estimate(c, QloraMethod(targets=ATTN), t, HardwarePlan()).memory
    # log_softmax's backward: its saved fp32 output, the incoming and the outgoing fp32 gradients
    assert e.logits_bytes == 4 * 2048 * 32000 * 12
    # checkpointing: the recomputed block exists only after the head's backward freed the logits
    whole, ckpt = (activation_bytes(c, QloraMethod(targets=ATTN), 2048, 4, k, 2) for k in (False, True))
    one_block = (whole - ckpt + 32 * 2048 * 4 * 4096 * 2) / 31  # whole: 32 blocks; ckpt: 32 inputs + one block
    kept = e.activations_bytes - one_block
    assert abs(e.peak_bytes - (e.weights_bytes + e.gradients_bytes + e.optimizer_bytes + kept
                               + max(e.logits_bytes, one_block))) < 2**20
    chunked = estimate(c, QloraMethod(targets=ATTN), t, HardwarePlan(), runtime=Runtime(chunked_loss=True)).memory
    assert chunked.logits_bytes == 4 * 2048 * 32000 * 12 // 8  # backend/loss.py: one slice of eight at a time
    # full fine-tuning with grad_accum 1: the gradients fill as the activations are freed
    f = estimate(c, FullMethod(), t, HardwarePlan()).memory
    assert f.peak_bytes == f.weights_bytes + f.optimizer_bytes + max(f.activations_bytes + f.logits_bytes,
                                                                      f.gradients_bytes)


def test_optimizer_state_per_optimizer() -> None:
    c = CARDS["llama2_7b"]
    m = LoraMethod(r=16, targets=ATTN)
    t = 16_777_216

    def opt(name: str) -> int:
        return estimate(c, m, TrainPlan(optimizer=name), HardwarePlan()).memory.optimizer_bytes

    assert opt("adamw") == 8 * t and opt("adamw_8bit") == 2 * t  # every LoRA matrix ≥ 4096 elements
    assert opt("paged_adamw_8bit") == 0 == opt("paged_adamw_32bit") == opt("sgd")
    assert 0 < opt("adafactor") < t  # a row and a column vector per matrix
    full = estimate(c, FullMethod(), TrainPlan(), HardwarePlan(), runtime=Runtime(pure_16bit=True)).memory
    assert full.weights_bytes + full.gradients_bytes + full.optimizer_bytes == 8 * total_params(c)


def test_sharding_ddp_fsdp_deepspeed_offload() -> None:
    c = CARDS["llama2_7b"]
    t = TrainPlan(precision="bf16", gradient_checkpointing=True)
    one = estimate(c, FullMethod(), t, HardwarePlan()).memory
    ddp = estimate(c, FullMethod(), t, HardwarePlan(count=4, strategy="ddp")).memory
    assert ddp.weights_bytes == one.weights_bytes + one.gradients_bytes  # + the all-reduce buckets
    fsdp = estimate(c, FullMethod(), t, HardwarePlan(count=4, strategy="fsdp")).memory
    assert fsdp.optimizer_bytes == one.optimizer_bytes // 4 and fsdp.gradients_bytes == one.gradients_bytes // 4
    assert one.weights_bytes / 4 < fsdp.weights_bytes < one.weights_bytes / 2  # shard + gathered blocks and root
    ds = estimate(c, FullMethod(), t, HardwarePlan(count=4, strategy="deepspeed")).memory  # ZeRO-2
    p = total_params(c)
    assert ds.weights_bytes == int(2 * p + 4 * p / 4) and ds.optimizer_bytes == one.optimizer_bytes // 4
    assert fsdp.activations_bytes == one.activations_bytes
    off = estimate(c, FullMethod(), t, HardwarePlan(count=4, strategy="fsdp"),
                   runtime=Runtime(zero_stage=3, offload_optimizer=True)).memory
    assert off.optimizer_bytes == 0


def test_data_aware_lengths() -> None:
    from ftlang.semantic.throughput import expected_batch_max

    assert expected_batch_max([1, 2, 3, 4], 2) == pytest.approx(20 / 6)
    assert expected_batch_max([5] * 10, 4) == pytest.approx(5)
    assert expected_batch_max([1, 2, 3, 4], 1) == pytest.approx(2.5)
    s = lengths_summary([10, 20, 60], batch=2, packed=False)
    assert s["max"] == 60 and s["rows"] == 3 and s["padded_mean"] == pytest.approx((20 + 60 + 60) / 3)


def test_fits_against_device_memory() -> None:
    c = CARDS["llama2_7b"]
    t = TrainPlan(precision="bf16")
    small = resources_plan(c, FullMethod(), t, HardwarePlan(gpu="A100-40GB", memory_bytes=40 * 2**30))
    assert not small.fits and small.device_memory_bytes == 40 * 2**30
    assert resources_plan(c, FullMethod(), t, HardwarePlan()).fits  # no hardware declared


def test_price_override_and_estimates_leave_the_hash_alone(tmp_path) -> None:
    from semantic_project import make_project

    from ftlang.semantic.check import check_text

    proj = make_project(tmp_path)
    text = (proj / "support_bot.ft").read_text()
    a = check_text(text, proj / "a.ft").plan
    b = check_text(text.replace('gpu = "A100-40GB"', 'gpu = "A100-40GB", price_per_hour = 0.5'), proj / "b.ft").plan
    assert a is not None and b is not None and a.sha256 == b.sha256
    assert a.hardware.price_per_hour == 1.29 and b.hardware.price_per_hour == 0.5
    assert b.resources.cost.usd == pytest.approx(a.resources.cost.usd * 0.5 / 1.29, abs=0.02)
    refined = a.model_copy(update={"resources": resources_plan_from(a, {"rows": 10, "max": 40, "mean": 30.0,
                                                                        "padded_mean": 35.0, "packed": False})})
    assert refined.resources.seq_len == 40 and refined.resources.seq_len_source == "data"
    assert refined.resources.memory.peak_bytes < a.resources.memory.peak_bytes
    assert refined.seal().sha256 == a.sha256  # a run's data-aware estimate keeps the plan's hash


def resources_plan_from(plan, lengths):
    from ftlang.semantic.resources import plan_resources

    return plan_resources(plan, lengths)


def test_time_flops_and_cost() -> None:
    from ftlang.semantic.throughput import flops_per_token, matmul_params, time_and_cost

    c = CARDS["llama2_7b"]
    n = matmul_params(c, None)
    assert n == linear_params(c) + 4096 * 32000
    attn = 4 * 512 * 4096 * 32
    t = TrainPlan(max_seq_len=512, max_steps=100, epochs=None, batch=4, precision="bf16")
    assert flops_per_token(c, FullMethod(), t, 0, 512, None) == 6 * n + 3 * attn
    m = LoraMethod(r=16, targets=ATTN)
    # LoRA's A and B: forward, input gradient and weight gradient (6 per parameter)
    assert flops_per_token(c, m, t, 16_777_216, 512, None) == 4 * n + 6 * 16_777_216 + 3 * attn
    hw = HardwarePlan(gpu="A100-80GB", memory_bytes=80 * 2**30, count=8, price_per_hour=1.8)
    res = resources_plan(c, m, t, hw)
    tm = res.time
    assert tm.tokens == 100 * 4 * 8 * 512 and tm.tokens_source == "max_steps" and tm.devices == 8
    assert tm.seconds == pytest.approx(tm.flops / (312e12 * 8 * tm.mfu), rel=1e-3)
    assert tm.low_seconds < tm.seconds < tm.high_seconds
    assert res.cost.usd == pytest.approx(tm.seconds / 3600 * 8 * 1.8, abs=0.01)
    # no rows and no max_steps: no time
    assert time_and_cost(c, m, TrainPlan(), HardwarePlan(), None, res, rows=None) == (None, None)


def test_compare_hardware_cheapest_first_and_fitting(tmp_path, capsys, monkeypatch) -> None:
    from semantic_project import make_project

    from ftlang.cli import main

    proj = make_project(tmp_path)
    monkeypatch.chdir(proj)
    assert main(["plan", "support_bot.ft", "--compare-hardware"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("≈")]
    assert len(lines) >= 3
    costs = [float(x.split("≈ $")[1].split()[0].replace(",", "")) for x in lines]
    assert costs == sorted(costs)
    assert not any("T4-16GB" in x for x in lines)  # a bf16 recipe: the T4 has no bf16


def test_check_data_uses_the_lengths_a_run_recorded(tmp_path, capsys, monkeypatch) -> None:
    import json

    from semantic_project import make_project

    from ftlang.cli import main
    from ftlang.semantic.check import check_file

    proj = make_project(tmp_path)
    monkeypatch.chdir(proj)
    plan = check_file(proj / "support_bot.ft").plan
    assert main(["check", "support_bot.ft", "--data"]) in (0, 1)
    before = capsys.readouterr().out
    assert f"{plan.train.max_seq_len} tokens per row (max_seq_len" in before
    run = proj / "runs" / plan.recipe.name / f"{plan.short_hash}-20260101T000000Z"
    run.mkdir(parents=True)
    lengths = {"rows": 100, "max": 90, "mean": 40.0, "padded_mean": 70.0, "packed": False}
    (run / "data.json").write_text(json.dumps({"lengths": lengths}))
    assert main(["check", "support_bot.ft", "--data"]) in (0, 1)
    after = capsys.readouterr().out
    assert "90 tokens per row (the longest batch in the data, as a run of this plan recorded; not tokenized " \
           "now: " in after  # support_bot augments its rows (and its model folder has no tokenizer.json)
    peak = [line.split(" · ")[1] for line in (before, after)]
    assert peak[0] != peak[1]


def _cpu_time(card, method, train, hw=None, *, rows=None, seq=64):
    return resources_plan(card, method, train, hw or HardwarePlan(device="cpu"), rows=rows, mean_seq=seq,
                          device="cpu").time


def test_cpu_time_model_terms(monkeypatch) -> None:
    """The CPU model: monotonic in steps, tokens and trainable parameters; checkpointing costs more;
    the overhead term exists on the CPU only; bf16 only speeds up CPUs with bf16 matmul instructions."""
    from ftlang.semantic import throughput as tp

    monkeypatch.setattr(tp.os, "cpu_count", lambda: 2)
    c = CARDS["smollm2_135m"]
    lora = LoraMethod(r=16, targets=ALL)
    t = TrainPlan(max_seq_len=128, max_steps=10, epochs=None, batch=8)
    base = _cpu_time(c, lora, t)
    assert base.overhead_seconds > 0 and base.devices == 1
    more_steps = _cpu_time(c, lora, t.model_copy(update={"max_steps": 20}))
    assert more_steps.seconds == pytest.approx(2 * base.seconds, rel=0.02)
    assert _cpu_time(c, lora, t, seq=128).seconds > base.seconds  # more tokens per step
    assert _cpu_time(c, lora.model_copy(update={"r": 64}), t).seconds > base.seconds  # more trainable
    assert _cpu_time(c, FullMethod(), t).seconds > base.seconds
    ckpt = _cpu_time(c, lora, t.model_copy(update={"gradient_checkpointing": True}))
    assert ckpt.seconds > base.seconds and ckpt.overhead_seconds > base.overhead_seconds
    # fewer adapted modules: less op overhead than LoRA on every linear
    ia3 = _cpu_time(c, Ia3Method(targets=["k_proj", "v_proj", "down_proj"], feedforward=["down_proj"]), t)
    assert ia3.overhead_seconds < base.overhead_seconds
    # prefix tuning: the virtual tokens lengthen attention, not the linears' positions
    prefix = _cpu_time(c, PrefixMethod(virtual_tokens=20), t, seq=84)
    prompt = _cpu_time(c, PromptMethod(virtual_tokens=20), t, seq=84)
    assert prefix.flops < prompt.flops
    gpu = resources_plan(c, lora, t, HardwarePlan(gpu="A100-80GB", memory_bytes=80 * 2**30), mean_seq=64).time
    assert gpu.overhead_seconds == 0.0 and gpu.seconds == pytest.approx(gpu.flops / (gpu.device_flops * 0.35), abs=0.06)
    bf16 = t.model_copy(update={"precision": "bf16"})
    monkeypatch.setattr(tp, "cpu_has_bf16", lambda: True)
    assert _cpu_time(c, lora, bf16).seconds < base.seconds
    monkeypatch.setattr(tp, "cpu_has_bf16", lambda: False)
    assert _cpu_time(c, lora, bf16).seconds == pytest.approx(base.seconds, rel=1e-3)
    # more cores: faster, but not linearly (the serial op overhead stays)
    monkeypatch.setattr(tp.os, "cpu_count", lambda: 4)
    four = _cpu_time(c, lora, t)
    assert base.seconds / 2 < four.seconds < base.seconds


def test_settle_after_load_starts_the_peak_window_at_the_loaded_model() -> None:
    """The loader's own peak (a transient buffer freed again) is not read as training's peak."""
    import sys

    from ftlang.backend.run import current_rss, peak_rss, settle_after_load

    if not sys.platform.startswith("linux"):
        pytest.skip("VmHWM and clear_refs are Linux")
    buf = bytearray(b"\x01") * (256 * 2**20)  # a transient copy, written and freed
    del buf
    assert peak_rss() - current_rss() > 200 * 2**20
    settle_after_load()
    assert peak_rss() - current_rss() < 64 * 2**20
