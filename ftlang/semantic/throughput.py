"""Training time and cost before a run: FLOPs / (peak FLOP/s · devices · MFU), and devices · hours · price.

FLOPs per trained position (N: the parameters a token multiplies through: the block linears and the
head; T: trainable parameters, B of them in matmul branches (LoRA's A and B, bottleneck adapters);
s: padded length; attention's two matmuls 2·2·s·q_dim per layer):
  full                 6·N + 3·A            (forward 2N, backward 4N)
  adapters (PEFT, ...) 4·N + 6·B + 2·(T − B) + 3·A
                       (no weight gradients for the frozen base; a branch's forward, input gradient
                       and weight gradient; elementwise parameters (IA3, prompts, prefixes) ≈ 2·T)
  gradient checkpointing adds one more forward (2·N + A)
  prefix tuning: the virtual tokens are keys and values only, so the linears see s − v positions
Tokens: rows · epochs · the mean padded length of a batch (from the data when known, else
max_seq_len), or max_steps · batch · grad_accum · devices · length.

On the CPU the FLOP term alone misses what dominates small models and adapter methods; the time is
  FLOPs / (core peak · MFU · speedup(cores))                                   matmuls
  + (tokens · branch elements · CPU_ELEMENT_S + steps · T · CPU_PARAM_S) / speedup(cores)
  + micro-batches · (L · CPU_LAYER_S + adapted modules · CPU_MODULE_S)          serial op overhead
(checkpointing repeats the forward's share, 1/3, of the last two). Constants and their source runs:
docs/estimator.md, "CPU time model".
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

from ftlang.plan import CostEstimate, HardwarePlan, ResourcesPlan, TaskSpec, TimeEstimate, TrainPlan
from ftlang.semantic.cards import (
    Card,
    extra_linears,
    linear_params,
    saved_modules_params,
    targets_count,
)
from ftlang.semantic.units import human_bytes, human_seconds

#: the local CPU's nominal peak per core: 2 FMA pipes × 8 fp32 lanes (256-bit) × 2 FLOPs × 3 GHz
CPU_PEAK_FLOPS_PER_CORE = 96e9
#: model FLOPs utilization per method kind on a GPU: assumptions from published throughput (docs/estimator.md)
GPU_MFU = {"full": 0.40, "lora": 0.35, "qlora": 0.25, "prefix": 0.35, "prompt": 0.35, "ia3": 0.35, "adapter": 0.30}
#: one CPU core's matmul rate over its nominal peak: 88.6 GFLOP/s measured single-threaded on the
#: 2-core AMD EPYC (Zen 4) for SmolLM2-135M IA3, whose steps are almost only the frozen base's matmuls
#: (fp32; full fine-tuning 84, MiniLM-L6's 384-wide matmuls 73); qlora's bitsandbytes CPU path: a guess
CPU_MFU = {"full": 0.92, "lora": 0.92, "qlora": 0.15, "prefix": 0.92, "prompt": 0.92, "ia3": 0.92,
           "adapter": 0.92}
#: what each core beyond the first adds: the idle 2-core runs (quickstart, full, adapter) took
#: 1/1.53 of the single-thread CPU seconds of their parallel work (OpenMP matmuls and elementwise kernels)
CPU_PARALLEL = 0.53
#: bf16 matmuls on a CPU with AVX512-BF16 or AMX: the quickstart step took 2.95 s single-threaded
#: against 3.75 s in fp32 (matmul term 1.45× faster); without those instructions autocast only converts
CPU_BF16_SPEEDUP = 1.45
#: serial per-step overhead of one micro-batch's forward + backward (Python, dispatcher, autograd),
#: per transformer layer and per adapted module: steps of 4 tokens took 171 ms (SmolLM2 IA3, 30 layers,
#: 90 modules), 221 ms (LoRA, 210 modules), 23 ms (MiniLM-L6 LoRA), single-threaded
CPU_LAYER_S = 3.6e-3
CPU_MODULE_S = 0.42e-3
#: memory-bound work of the adapter branches per token and per element of an adapted module's input
#: and output (dropout, mask, scaling, the add; rank-r matmuls run far below peak): LoRA r16
#: all-linear took 0.73 s per 456-token step beyond its FLOPs, single-threaded
CPU_ELEMENT_S = 5.2e-9
#: per trainable parameter and optimizer step: the gradient's allocation and write, clipping, AdamW
#: (full fine-tuning of 134.5M parameters: 0.40 s of a 4-token step beyond the layers' overhead)
CPU_PARAM_S = 2.94e-9
#: the range reported around the point estimate: measured CPU runs land within it; GPU MFU is wider
CPU_RANGE = (0.7, 1.4)
GPU_RANGE = (0.6, 1.6)


def matmul_params(card: Card, task: TaskSpec | None) -> int:
    """Parameters each token multiplies through: block linears, matched extras, and the head."""
    head = card.hidden * (max(len(task.labels), 2) if task is not None and task.kind == "classify" else card.vocab)
    return linear_params(card) + sum(i * o for _, i, o, _ in extra_linears(card)) + head


def branch_params(card: Card, method, trainable: int) -> int:
    """Trainable parameters a token multiplies through in matmul branches (LoRA's A and B, bottleneck
    adapters); the rest (IA3 vectors, prompts, prefixes, modules_to_save copies) get weight gradients only."""
    if method.kind in ("lora", "qlora"):
        return trainable - saved_modules_params(card, method.modules_to_save or [])
    return trainable if method.kind == "adapter" else 0


def flops_per_token(card: Card, method, train: TrainPlan, trainable: int, seq: int, task: TaskSpec | None) -> float:
    """FLOPs per position the linears see; `seq` is the length attention runs over."""
    n = matmul_params(card, task)
    attn_fwd = 4 * seq * card.q_dim * card.layers
    if method.kind == "full":
        flops = 6 * n + 3 * attn_fwd
    else:
        branch = branch_params(card, method, trainable)
        flops = 4 * n + 6 * branch + 2 * (trainable - branch) + 3 * attn_fwd
    if train.gradient_checkpointing:
        flops += 2 * n + attn_fwd
    return float(flops)


def adapted_modules(card: Card, method) -> tuple[int, int]:
    """(modules the method adds ops to, elements per token those ops read or write), over all layers."""
    kind = method.kind
    if kind in ("lora", "qlora", "ia3"):
        ff = set(getattr(method, "feedforward", []) or [])
        mods = targets_count(card, method.targets, lambda _n, _i, _o: 1)
        # LoRA reads the input and adds to the output; IA3 scales one side
        elements = targets_count(card, method.targets,
                                 lambda n, i, o: i + o if kind != "ia3" else (i if n in ff else o))
        return mods, elements
    if kind == "adapter":
        places = len(set(method.placement)) * card.layers
        return places, places * 2 * card.hidden
    return 0, 0


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matmul instructions (AVX512-BF16 or AMX); Linux only, else False."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def cpu_speedup(cores: int) -> float:
    return 1.0 + CPU_PARALLEL * max(0, cores - 1)


def cpu_overhead_seconds(card: Card, method, train: TrainPlan, trainable: int, tokens: float,
                         micro_batches: float, cores: int) -> float:
    """The CPU time beyond the matmuls: branch elementwise work, gradients + optimizer, op overhead."""
    mods, elements = adapted_modules(card, method)
    again = 4 / 3 if train.gradient_checkpointing else 1.0  # the forward's share runs twice
    steps = micro_batches / max(1, train.grad_accum)
    parallel = (tokens * elements * CPU_ELEMENT_S * again + steps * trainable * CPU_PARAM_S) / cpu_speedup(cores)
    serial = micro_batches * (card.layers * CPU_LAYER_S + mods * CPU_MODULE_S) * again
    return parallel + serial


def _device_flops(hardware: HardwarePlan, gpu: dict | None, precision: str) -> tuple[float, bool]:
    """Peak dense FLOP/s of one device at the precision (a CPU: all its cores' nominal peak), and
    whether it is a GPU."""
    if gpu is not None and gpu.get("tflops"):
        tf = gpu["tflops"]
        return float(tf.get(precision) or tf.get("fp16") or tf["fp32"]) * 1e12, True
    return CPU_PEAK_FLOPS_PER_CORE * (os.cpu_count() or 1), False


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
    # prefix tuning's virtual tokens are keys and values: attention runs over them, the linears do not
    virtual = method.virtual_tokens if method.kind == "prefix" else 0
    positions = tokens * max(1.0, seq - virtual) / seq
    flops = positions * flops_per_token(card, method, train, res.trainable_params, int(round(seq)), task)
    overhead = 0.0
    if is_gpu:
        mfu = GPU_MFU[method.kind]
        seconds = flops / (peak * devices * mfu)
    else:
        cores = os.cpu_count() or 1
        mfu = CPU_MFU[method.kind] * cpu_speedup(cores) / cores  # of all the cores' nominal peak
        if train.precision == "bf16" and cpu_has_bf16():
            mfu *= CPU_BF16_SPEEDUP
        micro_batches = tokens / devices / max(1.0, train.batch * seq)
        overhead = cpu_overhead_seconds(card, method, train, res.trainable_params, positions / devices,
                                        micro_batches, cores)
        seconds = flops / (peak * devices * mfu) + overhead
    lo, hi = GPU_RANGE if is_gpu else CPU_RANGE
    time = TimeEstimate(seconds=round(seconds, 1), low_seconds=round(seconds * lo, 1),
                        high_seconds=round(seconds * hi, 1), tokens=tokens, tokens_source=source, flops=flops,
                        device_flops=peak, mfu=round(mfu, 4), devices=devices,
                        overhead_seconds=round(overhead, 1))
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
