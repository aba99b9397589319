"""ftlang's memory estimate for published measured peaks: each row is a recipe with the peer's settings.

    python bench/estimator_published.py            # prints the Markdown table of docs/estimator.md

Every row is `.ft` recipe text (stdlib model card, method, train, hardware) compiled by the real checker
(`check_text`, what `ftlang check` runs); its estimate is the plan's `resources.memory.peak_bytes`. Where
the peer used a setting no recipe key expresses (torchtune's optimizer step in the backward, activation
offloading), the row says so and its estimate applies that `Runtime` knob on top of the compiled plan.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GIB = 2**30
TT = "torchtune README, Memory and training speed (Llama 3.1; batch 2, packed to 2048, compile)"
TT3 = "torchtune README, Optimization flags (Llama 3.2 3B, batch 2, packed 4096, bf16, A100; cumulative)"
PEFT = "PEFT docs, accelerate/fsdp.md: FSDP + QLoRA Llama-2 70B, 2 GPUs, batch 2, packed 2048, r8 all-linear"
QV_O_MLP = "[q_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]"
#: Runtime knobs without a recipe key, and the words the table uses for them
KNOB_WORDS = {"optimizer_in_backward": "optimizer step in backward", "offload_activations": "activation offloading"}


@dataclass
class Row:
    label: str
    source: str
    measured_gib: float
    model: str  # a stdlib card name; its file is stdlib/models/<family>.ft
    method: str  # the recipe's method block
    train: dict[str, object]
    hardware: dict[str, object] = field(default_factory=dict)
    knobs: dict[str, bool] = field(default_factory=dict)  # settings ftlang cannot express (KNOB_WORDS)
    unmodelled: str = ""  # a peer setting without a recipe key whose effect the estimate leaves out

    def recipe(self) -> str:
        """The recipe text a user would write for the peer's settings."""
        module = self.model.split("_")[0]
        train = ", ".join(f"{k} = {v}" for k, v in {"max_steps": 10, **self.train}.items())
        hardware = ", ".join(f"{k} = {v}" for k, v in self.hardware.items())
        return (f'import "stdlib/models/{module}.ft"\n\n'
                f"recipe published {{\n  model = {self.model}\n"
                '  data d = hf_dataset("yahma/alpaca-cleaned", split = "train") { format = instruction }\n'
                "  dataset train = d | to_chat()\n"
                f"  {self.method}\n  train {{ {train} }}\n"
                + (f"  hardware {{ {hardware} }}\n" if hardware else "") + "}\n")

    @property
    def expressible(self) -> str:
        missing = [KNOB_WORDS[k] for k in self.knobs] + ([self.unmodelled] if self.unmodelled else [])
        return "no: " + ", ".join(missing) if missing else "yes"


def _tt3(**extra) -> dict[str, object]:
    """torchtune's Llama 3.2 3B single-device baseline: batch 2, packed to 4096, pure bf16, flash SDPA."""
    return {"batch": 2, "max_seq_len": 4096, "packing": "true", "precision": "bf16", "pure_bf16": "true",
            "attention": "flash_attention_2", **extra}


def _tt8(**extra) -> dict[str, object]:
    """torchtune's Llama 3.1 8B single-device configs as the README measured them: batch 2, packed to 2048,
    compiled, chunked cross-entropy, activation checkpointing, pure bf16."""
    return {"batch": 2, "max_seq_len": 2048, "packing": "true", "precision": "bf16", "pure_bf16": "true",
            "attention": "flash_attention_2", "compile": "true", "loss": "chunked",
            "gradient_checkpointing": "true", **extra}


def rows() -> list[Row]:
    full, card3 = "method full {}", "llama32_3b"
    compiled = {"compile": "true"}
    chunked = {**compiled, "loss": "chunked"}
    ckpt = {**chunked, "gradient_checkpointing": "true"}
    in_bwd = {"optimizer_in_backward": True}
    offload = {**in_bwd, "offload_activations": True}
    lora3 = f"method lora {{ r = 64, alpha = 128, dropout = 0.0, targets = {QV_O_MLP} }}"
    qlora3 = (f"method qlora {{ r = 64, alpha = 128, dropout = 0.0, targets = {QV_O_MLP}, "
              "quant { type = nf4, double_quant = true } }")
    a100 = {"gpu": '"A100-80GB"'}
    rtx = {"gpu": '"RTX4090-24GB"'}
    fsdp = {"count": 2, "strategy": "fsdp"}
    a100_8 = {**a100, "count": 8, "strategy": "fsdp"}
    q70 = ("method qlora { r = 8, alpha = 16, dropout = 0.1, targets = all_linear, "
           "quant { type = nf4, double_quant = true, compute_dtype = bf16, storage = bf16 } }")
    t70 = {"batch": 2, "grad_accum": 2, "max_seq_len": 2048, "packing": "true", "precision": "bf16",
           "pure_bf16": "true", "attention": "flash_attention_2", "gradient_checkpointing": "true",
           "reentrant_checkpointing": "true"}
    return [
        Row("3B full, packed", TT3, 60.0, card3, full, _tt3(), a100),
        Row("3B full, + compile", TT3, 51.0, card3, full, _tt3(**compiled), a100),
        Row("3B full, + chunked CE", TT3, 42.9, card3, full, _tt3(**chunked), a100),
        Row("3B full, + activation checkpointing", TT3, 24.9, card3, full, _tt3(**ckpt), a100),
        Row("3B full, + optimizer in backward", TT3, 23.1, card3, full, _tt3(**ckpt), a100, in_bwd),
        Row("3B full, + activation offloading", TT3, 21.8, card3, full, _tt3(**ckpt), a100, offload),
        Row("3B full, + 8-bit AdamW", TT3, 17.6, card3, full, _tt3(**ckpt, optimizer="adamw_8bit"), a100, offload),
        Row("3B LoRA r64 q,v,o+MLP", TT3, 8.5, card3, lora3, _tt3(**ckpt), a100, {"offload_activations": True}),
        Row("3B QLoRA r64 q,v,o+MLP", TT3, 4.6, card3, qlora3, _tt3(**ckpt), a100, {"offload_activations": True}),
        Row("8B LoRA r8 q,v,o+MLP, 1×4090", TT, 16.2, "llama31_8b",
            f"method lora {{ r = 8, alpha = 16, dropout = 0.0, targets = {QV_O_MLP} }}", _tt8(), rtx),
        Row("8B QLoRA r8 q,v,o+MLP, 1×4090", TT, 7.4, "llama31_8b",
            f"method qlora {{ r = 8, alpha = 16, dropout = 0.0, targets = {QV_O_MLP}, "
            "quant { type = nf4, double_quant = true } }", _tt8(), rtx),
        Row("8B full, paged 8-bit Adam in backward, 1×4090", TT, 18.9, "llama31_8b", full,
            _tt8(optimizer="paged_adamw_8bit"), {}, in_bwd),  # no gpu: without the knob it needs 29.9 GiB
        Row("70B LoRA r16 q,v,o+MLP, 8×A100 FSDP", TT, 27.6, "llama31_70b",
            f"method lora {{ r = 16, alpha = 32, dropout = 0.0, targets = {QV_O_MLP} }}", _tt8(), a100_8),
        Row("70B full, 8×A100 FSDP, CPU offload", TT, 13.9, "llama31_70b", full, _tt8(),
            {**a100_8, "offload_params": "true"},
            unmodelled="embeddings and head sharded as units of their own (custom_sharded_layers; ftlang keeps "
                       "them gathered in the root unit)"),
        Row("70B QLoRA FSDP, no offload", PEFT, 35.6, "llama2_70b", q70, t70, fsdp),
        Row("70B QLoRA FSDP, CPU offload", PEFT, 19.6, "llama2_70b", q70, t70, {**fsdp, "offload_params": "true"}),
    ]


def compiled_estimate(row: Row) -> int:
    """The row's peak bytes: the compiled plan's estimate, with the row's inexpressible knobs on top."""
    from ftlang.semantic.cards import card_from_plan
    from ftlang.semantic.check import check_text
    from ftlang.semantic.resources import estimate, runtime_of

    result = check_text(row.recipe(), ROOT / "bench" / "published.ft")
    plan = result.plan
    if plan is None:
        raise SystemExit(f"{row.label}: the recipe does not compile: "
                         + "; ".join(f"{d.code} {d.message}" for d in result.diagnostics))
    if not row.knobs:
        return plan.resources.memory.peak_bytes
    card = card_from_plan(plan.model)
    rt = dataclasses.replace(runtime_of(card, plan.method, plan.train, plan.hardware), **row.knobs)
    return estimate(card, plan.method, plan.train, plan.hardware, plan.model.task, runtime=rt).memory.peak_bytes


def main() -> int:
    print("| setting | source | measured GiB | ftlang estimate GiB | estimate / measured | expressible in a recipe |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows():
        est = compiled_estimate(row) / GIB
        print(f"| {row.label} | {row.source} | {row.measured_gib:.1f} | {est:.1f} | {est / row.measured_gib:.2f} "
              f"| {row.expressible} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
