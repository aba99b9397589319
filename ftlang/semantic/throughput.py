"""Training time and cost before a run: FLOPs / (peak FLOP/s · devices · MFU), and devices · hours · price.

FLOPs per trained position (N: the parameters a token multiplies through: the block linears and the
head; T: trainable parameters; s: padded length; attention's two matmuls 2·2·s·q_dim per layer):
  full                 6·N + 3·A            (forward 2N, backward 4N)
  adapters (PEFT, ...) 4·N + 2·T + 3·A      (no weight gradients for the frozen base)
  gradient checkpointing adds one more forward (2·N + A)
Tokens: rows · epochs · the mean padded length of a batch (from the data when known, else
max_seq_len), or max_steps · batch · grad_accum · devices · length. Constants and their sources:
docs/estimator.md.
"""

from __future__ import annotations

import math
import os

from ftlang.plan import CostEstimate, HardwarePlan, ResourcesPlan, TaskSpec, TimeEstimate, TrainPlan
from ftlang.semantic.cards import Card, extra_linears, linear_params
from ftlang.semantic.units import human_bytes, human_seconds

#: the local CPU's nominal peak per core: 2 FMA pipes × 8 fp32 lanes (256-bit) × 2 FLOPs × 3 GHz. The
#: MFU below is calibrated against it from runs measured on this project's 2-core AMD EPYC machine.
CPU_PEAK_FLOPS_PER_CORE = 96e9
#: model FLOPs utilization per method kind: GPU figures are assumptions from published throughput
#: (docs/estimator.md); CPU: SmolLM2-135M LoRA measured at 0.6-0.7 of the nominal peak on an idle 2-core
#: machine (docs/estimator.md, "CPU runs"); qlora's bitsandbytes CPU path is an unmeasured guess
GPU_MFU = {"full": 0.40, "lora": 0.35, "qlora": 0.25, "prefix": 0.35, "prompt": 0.35, "ia3": 0.35, "adapter": 0.30}
CPU_MFU = {"full": 0.60, "lora": 0.60, "qlora": 0.10, "prefix": 0.60, "prompt": 0.60, "ia3": 0.60,
           "adapter": 0.60}
#: bf16 on a CPU without AMX runs through conversions: slower than fp32 (measured ratio)
CPU_BF16_SLOWDOWN = 1.0
#: the range reported around the point estimate: measured CPU runs land within it; GPU MFU is wider
CPU_RANGE = (0.7, 1.4)
GPU_RANGE = (0.6, 1.6)


def matmul_params(card: Card, task: TaskSpec | None) -> int:
    """Parameters each token multiplies through: block linears, matched extras, and the head."""
    head = card.hidden * (max(len(task.labels), 2) if task is not None and task.kind == "classify" else card.vocab)
    return linear_params(card) + sum(i * o for _, i, o, _ in extra_linears(card)) + head


def flops_per_token(card: Card, method, train: TrainPlan, trainable: int, seq: int, task: TaskSpec | None) -> float:
    n = matmul_params(card, task)
    attn_fwd = 4 * seq * card.q_dim * card.layers
    if method.kind == "full":
        flops = 6 * n + 3 * attn_fwd
    else:
        flops = 4 * n + 2 * trainable + 3 * attn_fwd
    if train.gradient_checkpointing:
        flops += 2 * n + attn_fwd
    return float(flops)


def _device_flops(hardware: HardwarePlan, gpu: dict | None, precision: str) -> tuple[float, bool]:
    """Peak dense FLOP/s of one device at the precision, and whether it is a GPU."""
    if gpu is not None and gpu.get("tflops"):
        tf = gpu["tflops"]
        return float(tf.get(precision) or tf.get("fp16") or tf["fp32"]) * 1e12, True
    cores = os.cpu_count() or 1
    return CPU_PEAK_FLOPS_PER_CORE * cores / (CPU_BF16_SLOWDOWN if precision == "bf16" else 1.0), False


def train_tokens(train: TrainPlan, hardware: HardwarePlan, rows: float | None, seq: int,
                 seq_source: str) -> tuple[int, str] | None:
    """Positions trained on and where the count came from, or None when it cannot be known."""
    devices = max(1, hardware.count * hardware.nodes)
    if train.max_steps is not None:
        return int(train.max_steps * train.batch * train.grad_accum * devices * seq), "max_steps"
    if rows is None or train.epochs is None:
        return None
    return int(rows * train.epochs * seq), ("data" if seq_source != "max_seq_len" else "max_seq_len")


def time_and_cost(card: Card, method, train: TrainPlan, hardware: HardwarePlan, task: TaskSpec | None,
                  res: ResourcesPlan, *, rows: float | None, mean_seq: float | None = None,
                  gpu: dict | None = None) -> tuple[TimeEstimate | None, CostEstimate | None]:
    """`mean_seq`: the mean padded length of a batch from the data (res.seq_len, the longest, otherwise)."""
    seq = mean_seq or res.seq_len
    counted = train_tokens(train, hardware, rows, int(round(seq)), res.seq_len_source)
    if counted is None:
        return None, None
    tokens, source = counted
    if gpu is None and hardware.gpu is not None:
        from ftlang.semantic.context import hardware_catalog

        gpu = hardware_catalog().get(hardware.gpu)
    peak, is_gpu = _device_flops(hardware, gpu, train.precision)
    devices = max(1, hardware.count * hardware.nodes)
    mfu = (GPU_MFU if is_gpu else CPU_MFU)[method.kind]
    flops = tokens * flops_per_token(card, method, train, res.trainable_params, int(round(seq)), task)
    seconds = flops / (peak * devices * mfu)
    lo, hi = GPU_RANGE if is_gpu else CPU_RANGE
    time = TimeEstimate(seconds=round(seconds, 1), low_seconds=round(seconds * lo, 1),
                        high_seconds=round(seconds * hi, 1), tokens=tokens, tokens_source=source, flops=flops,
                        device_flops=peak, mfu=mfu, devices=devices)
    price = hardware.price_per_hour if hardware.price_per_hour is not None else (gpu or {}).get("price_per_hour")
    if price is None:
        return time, None
    usd = devices * price / 3600

    def money(s: float) -> float:
        return round(s * usd, 2)

    return time, CostEstimate(usd=money(seconds), low_usd=money(seconds * lo), high_usd=money(seconds * hi),
                              price_per_hour=float(price))


def expected_batch_max(lengths: list[int], batch: int) -> float:
    """E[the longest of `batch` rows drawn without replacement]: the mean padded length of a shuffled
    batch (the Trainer's RandomSampler). P(max = k-th smallest) = C(k-1, b-1) / C(n, b)."""
    n = len(lengths)
    if n == 0:
        return 0.0
    b = min(max(1, batch), n)
    xs = sorted(lengths)
    lg = math.lgamma
    log_total = lg(n + 1) - lg(b + 1) - lg(n - b + 1)
    out = 0.0
    for k in range(b, n + 1):
        log_ways = lg(k) - lg(b) - lg(k - b + 1)
        out += xs[k - 1] * math.exp(log_ways - log_total)
    return out


def summary_line(res: ResourcesPlan, hardware: HardwarePlan) -> str:
    """`≈ 20.0M trainable · 17.6 GiB peak of 24.0 GiB · ≈ 2.1 h · ≈ $3.80 on 1×RTX4090-24GB`."""
    m = res.memory
    parts = [f"≈ {_count(res.trainable_params)} trainable"]
    of = f" of {human_bytes(res.device_memory_bytes)}" if res.device_memory_bytes else ""
    parts.append(f"{human_bytes(m.peak_bytes)} peak{of}")
    if res.time is not None:
        parts.append("< 1 s" if res.time.seconds < 1 else f"≈ {human_seconds(res.time.seconds)}")
    if res.cost is not None:
        parts.append("< $0.01" if res.cost.usd < 0.01 else f"≈ ${res.cost.usd:,.2f}")
    devices = max(1, hardware.count * hardware.nodes)
    where = f"{devices}×{hardware.gpu}" if hardware.gpu else (
        f"{devices}×{human_bytes(hardware.memory_bytes)} device" if hardware.memory_bytes else
        f"the local CPU ({os.cpu_count() or 1} cores)")
    line = " · ".join(parts) + f" on {where}"
    if not res.fits:
        line += " (does not fit)"
    return line


def length_note(res: ResourcesPlan, why: str | None = None) -> str:
    """Which token lengths the estimate used; `why` (check --data): why the data was not tokenized now."""
    src = {"data": "the longest batch in the data", "packing": "packed to max_seq_len",
           "max_seq_len": f"max_seq_len; data not tokenized: {why}" if why else
           "max_seq_len; `ftlang check --data` tokenizes the data"}[res.seq_len_source]
    if why and res.seq_len_source != "max_seq_len":  # lengths a run of the plan recorded
        src += f", as a run of this plan recorded; not tokenized now: {why}"
    return f"{res.seq_len} tokens per row ({src}) · attention {res.attention}"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
