"""Trainable parameters and peak GPU memory per device, from a model card. Pure arithmetic.

Trainable parameters (exact; biases are never adapted):
  full     every parameter of the model (cards.total_params)
  lora     Σ over adapted matrices r·(d_in + d_out)   (+ d_out per matrix with DoRA's magnitude vector);
           GQA shrinks k_proj/v_proj's d_out to kv_heads·head_dim; gpt2's c_proj counts twice per layer
  prefix   layers · 2 · kv_dim · virtual_tokens        (PEFT prefix tuning without projection:
           one key and one value vector per layer and virtual token)
  prompt   virtual_tokens · hidden
  ia3      Σ over target matrices d_out, or d_in for modules listed in `feedforward`
  adapter  per placement per layer 2·hidden·bottleneck + bottleneck + hidden (down+up proj with biases)

Memory per device, bytes (P = total params, T = trainable, L = layers, s = max_seq_len (+ virtual
tokens for prefix/prompt), b = per-device batch, h = hidden, a = heads, V = vocab):
  full, fp32            weights 4P, gradients 4P, Adam 8P                  = 16 B/param
  full, bf16/fp16       weights 2P + fp32 master 4P, gradients 4P, Adam 8P = 18 B/param
  PEFT (lora, ia3, ...) frozen base 2 B/param in bf16/fp16 (4 in fp32, and always 4 for ftlang's
                        bottleneck adapters), plus 16 B per trainable
                        param (fp32 weight 4, gradient 4, Adam 8)
  qlora                 block linear weights in NF4: 4.127 bits/param with double quant, 4.5 without
                        (a 32-bit absmax per 64 weights, or an 8-bit one per 64 plus a 32-bit one per
                        256 blocks); embeddings, norms and lm_head stay 2 B/param; + 16 B per trainable
  optimizer             adamw 8 B/trainable param; 8-bit Adam 2; adafactor ≈ 4; sgd 0
  activations           Korthikanti et al. 2022, per layer, 16-bit: s·b·h·(34 + 5·a·s/h);
                        with gradient checkpointing only each layer's input is kept (2·s·b·h per layer)
                        plus one layer recomputed in full; fp32 doubles both
  logits                b·s·V·4 (fp32 logits; for classification b·labels·4)
  peak                  weights + gradients + optimizer + activations + logits
Data parallelism (ddp) replicates weights; fsdp/deepspeed shard weights, gradients and optimizer
state by the world size (count · nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

from ftlang.plan import HardwarePlan, MemoryEstimate, ResourcesPlan, TaskSpec, TrainPlan
from ftlang.semantic.cards import Card, extra_linears, layer_linears, linear_params, total_params

NF4_BITS_DOUBLE_QUANT = 4.127
NF4_BITS = 4.5
_OPTIMIZER_BYTES = {"adamw": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2, "paged_adamw_32bit": 8,
                    "sgd": 0, "adafactor": 4}


@dataclass(frozen=True)
class Estimate:
    trainable: int
    total: int
    memory: MemoryEstimate


def _targets_count(card: Card, targets: list[str], per_matrix) -> int:
    wanted = set(targets)
    n = 0
    for name, d_in, d_out, _ in layer_linears(card):
        if name in wanted:
            n += per_matrix(name, d_in, d_out) * card.layers
    for name, d_in, d_out, _ in extra_linears(card):
        if name in wanted:
            n += per_matrix(name, d_in, d_out)
    return n


def trainable_params(card: Card, method) -> int:
    """Exact trainable parameter count of a plan method (plan.Method) on this card."""
    kind = method.kind
    if kind == "full":
        return total_params(card)
    if kind in ("lora", "qlora"):
        r, dora = method.r, method.dora
        return _targets_count(card, method.targets, lambda _n, i, o: r * (i + o) + (o if dora else 0))
    if kind == "prefix":
        return card.layers * 2 * card.kv_dim * method.virtual_tokens
    if kind == "prompt":
        return method.virtual_tokens * card.hidden
    if kind == "ia3":
        ff = set(method.feedforward)
        return _targets_count(card, method.targets, lambda n, i, o: i if n in ff else o)
    if kind == "adapter":
        per = 2 * card.hidden * method.bottleneck + method.bottleneck + card.hidden
        return per * len(set(method.placement)) * card.layers
    raise ValueError(f"unknown method kind {kind!r}")


def activation_bytes(card: Card, seq: int, batch: int, checkpointing: bool, precision: str) -> int:
    h, a = card.hidden, card.heads
    per_layer = seq * batch * h * (34 + 5 * a * seq / h)
    if checkpointing:
        total = card.layers * 2 * seq * batch * h + per_layer
    else:
        total = card.layers * per_layer
    return int(total * (2 if precision == "fp32" else 1))


def estimate(card: Card, method, train: TrainPlan, hardware: HardwarePlan, task: TaskSpec | None = None) -> Estimate:
    total = total_params(card)
    trainable = trainable_params(card, method)
    opt_bytes = _OPTIMIZER_BYTES.get(train.optimizer, 8)
    half = train.precision in ("bf16", "fp16")
    if method.kind == "full":
        weights = total * (6 if half else 4)
        grads = 4 * total
    else:
        if method.kind == "qlora":
            bits = NF4_BITS_DOUBLE_QUANT if method.quant.double_quant else NF4_BITS
            quantized = linear_params(card)
            weights = int(quantized * bits / 8) + (total - quantized) * 2
        else:
            # backend/load.py loads a PEFT-frozen base in the 16-bit precision; ftlang's own
            # bottleneck adapters keep an fp32 base (they compute outside autocast)
            weights = total * (2 if half and method.kind != "adapter" else 4)
        weights += 4 * trainable
        grads = 4 * trainable
    optimizer = opt_bytes * trainable
    if hardware.strategy in ("fsdp", "deepspeed"):
        world = max(1, hardware.count * hardware.nodes)
        weights, grads, optimizer = -(-weights // world), -(-grads // world), -(-optimizer // world)
    seq = train.max_seq_len + (getattr(method, "virtual_tokens", 0) or 0)
    acts = activation_bytes(card, seq, train.batch, train.gradient_checkpointing, train.precision)
    if task is not None and task.kind == "classify":
        logits = train.batch * max(len(task.labels), 2) * 4
    else:
        logits = train.batch * seq * card.vocab * 4
    peak = weights + grads + optimizer + acts + logits
    mem = MemoryEstimate(weights_bytes=int(weights), gradients_bytes=int(grads), optimizer_bytes=int(optimizer),
                         activations_bytes=int(acts), logits_bytes=int(logits), peak_bytes=int(peak))
    return Estimate(trainable, total, mem)


def resources_plan(card: Card, method, train: TrainPlan, hardware: HardwarePlan,
                   task: TaskSpec | None = None) -> ResourcesPlan:
    est = estimate(card, method, train, hardware, task)
    device = hardware.memory_bytes
    fits = device is None or est.memory.peak_bytes <= device
    return ResourcesPlan(trainable_params=est.trainable, total_params=est.total, fits=fits, memory=est.memory,
                         device_memory_bytes=device)


def human_bytes(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def human_count(n: int | float) -> str:
    """A parameter count for people: 20.0M, 6.7B, 18.4K."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(int(n))
