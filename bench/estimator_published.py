"""ftlang's memory estimate for published measured peaks, with the peer's settings.

    python bench/estimator_published.py            # prints the Markdown table of docs/estimator.md

Each row names its source, the peer's settings as ftlang plan sections plus the `Runtime` knobs for
what ftlang's runtime does not do (pure bf16, chunked loss, ZeRO-3 offload, optimizer in backward,
activation offloading, torch.compile), and whether a recipe can express it today.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftlang.plan import FullMethod, HardwarePlan, LoraMethod, QloraMethod, QuantSpec, TrainPlan  # noqa: E402
from ftlang.semantic.resources import Runtime, estimate  # noqa: E402

GIB = 2**30
TT = "torchtune README, Memory and training speed (Llama 3.1; batch 2, packed to 2048, compile)"
TT3 = "torchtune README, Optimization flags (Llama 3.2 3B full, batch 2, packed 4096, bf16, A100; cumulative)"
PEFT = "PEFT docs, accelerate/fsdp.md: FSDP + QLoRA Llama-2 70B, 2 GPUs, batch 2, packed 2048, r8 all-linear"
QV_O_MLP = ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Row:
    label: str
    card: str
    method: object
    train: TrainPlan
    runtime: Runtime
    measured_gib: float
    source: str
    hardware: HardwarePlan = field(default_factory=HardwarePlan)
    compiled: bool = False
    expressible: str = "no: pure bf16"


def _tt3(seq: int = 4096, **rt) -> tuple[TrainPlan, Runtime]:
    ckpt = rt.pop("ckpt", False)
    return (TrainPlan(batch=2, max_seq_len=seq, precision="bf16", packing=True, gradient_checkpointing=ckpt,
                      optimizer=rt.pop("optimizer", "adamw")),
            Runtime(attention="flash", pure_16bit=True, **rt))


def rows() -> list[Row]:
    full = FullMethod()
    out: list[Row] = []
    t, r = _tt3()
    out.append(Row("3B full, packed", "llama32_3b", full, t, r, 60.0, TT3))
    out.append(Row("3B full, + compile", "llama32_3b", full, t, r, 51.0, TT3, compiled=True))
    t, r = _tt3(chunked_loss=True)
    out.append(Row("3B full, + chunked CE", "llama32_3b", full, t, r, 42.9, TT3, compiled=True))
    t, r = _tt3(chunked_loss=True, ckpt=True)
    out.append(Row("3B full, + activation checkpointing", "llama32_3b", full, t, r, 24.9, TT3, compiled=True))
    t, r = _tt3(chunked_loss=True, ckpt=True, optimizer_in_backward=True)
    out.append(Row("3B full, + optimizer in backward", "llama32_3b", full, t, r, 23.1, TT3, compiled=True))
    t, r = _tt3(chunked_loss=True, ckpt=True, optimizer_in_backward=True, offload_activations=True)
    out.append(Row("3B full, + activation offloading", "llama32_3b", full, t, r, 21.8, TT3, compiled=True))
    t, r = _tt3(chunked_loss=True, ckpt=True, optimizer_in_backward=True, offload_activations=True,
                optimizer="adamw_8bit")
    out.append(Row("3B full, + 8-bit AdamW", "llama32_3b", full, t, r, 17.6, TT3, compiled=True))
    lora = LoraMethod(r=64, alpha=128, targets=QV_O_MLP)
    t, r = _tt3(chunked_loss=True, ckpt=True, offload_activations=True)
    out.append(Row("3B LoRA r64 q,v,o+MLP", "llama32_3b", lora, t, r, 8.5, TT3, compiled=True))
    qlora = QloraMethod(r=64, alpha=128, targets=QV_O_MLP, dropout=0.0, quant=QuantSpec(double_quant=True))
    out.append(Row("3B QLoRA r64 q,v,o+MLP", "llama32_3b", qlora, t, r, 4.6, TT3, compiled=True))
    t8 = TrainPlan(batch=2, max_seq_len=2048, precision="bf16", packing=True, gradient_checkpointing=True)
    r8 = Runtime(attention="flash", pure_16bit=True, chunked_loss=True)
    lora8 = LoraMethod(r=8, alpha=16, targets=QV_O_MLP)
    out.append(Row("8B LoRA r8 q,v,o+MLP, 1×4090", "llama31_8b", lora8, t8, r8, 16.2, TT, compiled=True))
    qlora8 = QloraMethod(r=8, alpha=16, targets=QV_O_MLP, dropout=0.0)
    out.append(Row("8B QLoRA r8 q,v,o+MLP, 1×4090", "llama31_8b", qlora8, t8, r8, 7.4, TT, compiled=True))
    t8f = t8.model_copy(update={"optimizer": "paged_adamw_8bit"})
    r8f = Runtime(attention="flash", pure_16bit=True, chunked_loss=True, optimizer_in_backward=True)
    out.append(Row("8B full, paged 8-bit Adam in backward, 1×4090", "llama31_8b", full, t8f, r8f, 18.9, TT,
                   compiled=True))
    t70 = TrainPlan(batch=2, max_seq_len=2048, precision="bf16", packing=True, gradient_checkpointing=True,
                    grad_accum=2)
    q70 = QloraMethod(r=8, alpha=16, dropout=0.1, targets=ALL)
    hw2 = HardwarePlan(count=2, strategy="fsdp")
    out.append(Row("70B QLoRA FSDP, no offload", "llama2_70b", q70, t70,
                   Runtime(attention="flash", pure_16bit=True, zero_stage=3), 35.6, PEFT, hardware=hw2,
                   expressible="no: bf16 quant storage (pure bf16), use_orig_params=False"))
    out.append(Row("70B QLoRA FSDP, CPU offload", "llama2_70b", q70, t70,
                   Runtime(attention="flash", pure_16bit=True, zero_stage=3, offload_params=True), 19.6, PEFT,
                   hardware=hw2, expressible="no: parameter offload"))
    return out


def main() -> int:
    cards = load_cards()
    print("| setting | source | measured GiB | ftlang estimate GiB | estimate / measured | expressible in a recipe |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows():
        card = cards[row.card]
        est = estimate(card, row.method, row.train, row.hardware, runtime=row.runtime).memory.peak_bytes / GIB
        note = row.expressible + ("; torch.compile (not modelled)" if row.compiled else "")
        print(f"| {row.label} | {row.source} | {row.measured_gib:.1f} | {est:.1f} | {est / row.measured_gib:.2f} "
              f"| {note} |")
    return 0


def load_cards() -> dict:
    """The stdlib model cards by name."""
    from ftlang.resources import stdlib_dir
    from ftlang.semantic.build import card_from_node
    from ftlang.semantic.resolve import resolve

    out = {}
    for f in sorted((stdlib_dir() / "models").glob("*.ft")):
        for name, node in resolve(f).cards.items():
            out[name] = card_from_node(node, {})[0]
    return out


if __name__ == "__main__":
    sys.exit(main())
