"""Trainable parameters and peak memory per device, from a model card. Pure arithmetic, torch-free.

Every term models what ftlang's backend actually does (backend/load.py, methods.py, train.py,
launch.py); docs/estimator.md derives each one and lists its sources and the measured checks.

Trainable parameters (exact; biases are never adapted):
  full     every parameter of the model (cards.total_params)
  lora     Σ over adapted matrices r·(d_in + d_out)   (+ d_out per matrix with DoRA's magnitude vector)
  prefix   layers · 2 · kv_dim · virtual_tokens;  prompt  virtual_tokens · hidden
  ia3      Σ over target matrices d_out, or d_in for modules listed in `feedforward`
  adapter  per placement per layer 2·hidden·bottleneck + bottleneck + hidden

Memory per device, bytes (P total params, T trainable, e = 2 under bf16/fp16 autocast else 4,
s the padded sequence length, b the per-device micro-batch, h hidden, a heads, V vocab, L layers):
  weights      full: 4P fp32 (+2P: the bf16/fp16 copies autocast makes and autograd keeps; 2P + 4P/world
               fp32 master under DeepSpeed); PEFT: frozen base e·P (4 for ftlang's adapters) + 4T;
               qlora: 4-bit block linears (4.127 bits with double quant, 4.5 without) and every other
               parameter in fp32 (prepare_model_for_kbit_training upcasts them) + 4T
  gradients    4 per trainable parameter (fp32 parameters)
  optimizer    adamw 8·T, 8-bit Adam 2·T (+8 per parameter of tensors under 4096 elements), paged
               variants the same bytes but in pageable memory (not counted: they page out under
               pressure), adafactor 4·(rows + cols) per matrix, sgd 0
  activations  per layer and token the tensors autograd saves (see `_saved_per_token`), times s·b·L; a norm
               keeps its input as the fp32 upcast unless `train { compile }`; eager attention adds
               a·s·(4 + e) per token (fp32 softmax + its e copy); with gradient checkpointing only each
               layer's input (h·e) is kept, plus one layer recomputed after the logits are freed; a
               materialised attention mask adds b·s² bytes. Methods whose base is all frozen (ia3,
               prefix, prompt, adapters) save no linear's input; prefix tokens are keys and values
               only (the hidden states and logits have the rows' length)
  logits       causal LM: b·s·V·max(e + 8, 12): the forward's e-logits, fp32 copy and log_softmax output,
               or log_softmax's backward (saved output, incoming and outgoing fp32 gradients);
               `train { loss = chunked }` (backend/loss.py) one slice of LOSS_CHUNKS, and a trained head's
               gradient g beside it: max(slice + g, 3g) (the slices' gradients summed out of place); classify: tiny
  peak         weights + optimizer + kept activations + max(logits, recomputed block) + gradients
               (gradients overlap the freed activations when grad_accum = 1: max(those, gradients)), + 150 MiB
               on the CPU for the process beyond its tensors (measured, CPU_RUNTIME_BYTES)
Sharding (world = count · nodes): ddp replicates and adds a gradient bucket copy; fsdp (FULL_SHARD,
ZeRO-3) divides weights, gradients and optimizer state by world and adds two gathered layers (qlora: in
their 4-bit bytes) and the root unit (embeddings, head), offload_params leaving no weights or gradients;
deepspeed (ZeRO-2, what launch.py writes) divides gradients and optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ftlang.plan import (
    LOSS_CHUNKS,
    HardwarePlan,
    MemoryEstimate,
    ResourcesPlan,
    TaskSpec,
    TrainPlan,
    zero_stage,
)
from ftlang.semantic.cards import (
    EMBEDDING_MODULES,
    HEAD_MODULES,
    Card,
    classifier_params,
    layer_linears,
    linear_params,
    saved_modules_params,
    targets_count,
    total_params,
)

#: bits per weight of a bitsandbytes-quantized linear: 4-bit + a 32-bit absmax per 64 weights (4.5), or
#: with double quant an 8-bit absmax per 64 plus a 32-bit one per 256 blocks (4.127); int8 (LLM.int8)
#: 8 bits + a 32-bit scale per row (≈ 8)
NF4_BITS_DOUBLE_QUANT = 4.127
NF4_BITS = 4.5
INT8_BITS = 8.0
#: bitsandbytes 8-bit optimizers keep tensors under this many elements in 32-bit state (min_8bit_size)
BNB_MIN_8BIT_SIZE = 4096
#: transformers' default attention per family (PreTrainedModel._supports_sdpa; gemma2 has no SDPA
#: because SDPA cannot soft-cap the scores), used when `train { attention }` is unset (backend/load.py
#: then passes no attn_implementation)
EAGER_FAMILIES = frozenset({"gemma2"})
#: a CPU training process's memory beyond its tensors (autograd engine and oneDNN/OpenMP buffers, malloc
#: slack), measured with bench/estimator_bench.py: +220 MiB over the tensors for SmolLM2-135M LoRA,
#: +146 MiB for MiniLM-L6 LoRA (docs/estimator.md)
CPU_RUNTIME_BYTES = 150 * 2**20

#: methods whose base linears are all frozen and have no per-linear branch reading their input
FROZEN_BASE_METHODS = frozenset({"ia3", "prefix", "prompt", "adapter"})

Attention = Literal["sdpa", "eager", "flash"]


@dataclass(frozen=True)
class Runtime:
    """What the backend does with the plan, as far as memory goes. `runtime_of` derives it from the
    plan; the published-peaks table (docs/estimator.md) also sets what ftlang cannot express yet."""

    attention: Attention = "sdpa"
    pure_16bit: bool = False  # weights, gradients and Adam state in bf16 (torchtune; ftlang: train { pure_bf16 })
    compiled: bool = False  # torch.compile: the norms' fp32 upcasts are recomputed in the backward, not kept
    chunked_loss: bool = False  # cross-entropy over chunks of the sequence, logits never whole
    zero_stage: int = 0  # 0 replicate, 2 shard gradients + optimizer, 3 shard weights too
    offload_optimizer: bool = False  # optimizer state (and its step) on the CPU
    offload_params: bool = False  # sharded weights on the CPU
    optimizer_in_backward: bool = False  # step each parameter as its gradient arrives (no gradient buffer)
    offload_activations: bool = False  # checkpointed layer inputs wait on the CPU (torchtune)
    ddp_buckets: bool = True  # DDP keeps a flat copy of the gradients for all-reduce


def runtime_of(card: Card, method, train: TrainPlan, hardware: HardwarePlan) -> Runtime:
    """The runtime ftlang's backend uses for this plan (see the module doc for where each comes from)."""
    offload_all = hardware.strategy == "fsdp" and bool(hardware.offload_params)  # fsdp offloads both together
    return Runtime(attention=attention_of(card, train), zero_stage=zero_stage(hardware),
                   pure_16bit=bool(train.pure_bf16), chunked_loss=train.loss == "chunked",
                   compiled=bool(train.compile),
                   offload_params=bool(hardware.offload_params),
                   offload_optimizer=bool(hardware.offload_optimizer) or offload_all)


def attention_of(card: Card, train: TrainPlan) -> Attention:
    """The attention kernel the backend runs: `train { attention }`, else transformers' family default."""
    if train.attention is not None:
        return "flash" if train.attention == "flash_attention_2" else train.attention
    return "eager" if card.family in EAGER_FAMILIES else "sdpa"


@dataclass(frozen=True)
class Estimate:
    trainable: int
    total: int
    memory: MemoryEstimate


def trainable_params(card: Card, method) -> int:
    """Exact trainable parameter count of a plan method (plan.Method) on this card."""
    kind = method.kind
    if kind == "full":
        return total_params(card)
    if kind in ("lora", "qlora"):
        r, dora = method.r, method.dora
        lora = targets_count(card, method.targets, lambda _n, i, o: r * (i + o) + (o if dora else 0))
        return lora + saved_modules_params(card, method.modules_to_save or [])
    if kind == "prefix":
        return card.layers * 2 * card.kv_dim * method.virtual_tokens
    if kind == "prompt":
        return method.virtual_tokens * card.hidden
    if kind == "ia3":
        ff = set(method.feedforward)
        return targets_count(card, method.targets, lambda n, i, o: i if n in ff else o)
    if kind == "adapter":
        per = 2 * card.hidden * method.bottleneck + method.bottleneck + card.hidden
        return per * len(set(method.placement)) * card.layers
    raise ValueError(f"unknown method kind {kind!r}")


# ---------------------------------------------------------------------------- activations


def norm_bytes(card: Card, e: int, compiled: bool) -> int:
    """Bytes one RMSNorm/LayerNorm keeps per token: its output (the next matmul's input, e·h) and its input.
    Eager, the input is kept as the fp32 upcast (transformers' LlamaRMSNorm `hidden_states.to(torch.float32)`
    feeds pow and mul, which save it); compiled, AOTAutograd's min-cut partitioner recomputes the cast in
    the backward and keeps the e-input."""
    return card.hidden * (e + (e if compiled else max(e, 4)))


def _saved_per_token(card: Card, method, e: int, compiled: bool = False) -> float:
    """Bytes autograd keeps per token in one block, without the attention scores.

    Decoder blocks (Llama-like): the two norms (`norm_bytes`), q (q_dim), k and v (2·kv_dim),
    the attention output (q_dim), and the MLP's gate, up, act(gate) and their product (4i); GPT-2 /
    BERT blocks: the fc output and its GeLU (2i) instead. LoRA adds per adapted matrix its dropout
    output (d_in·e) and mask (d_in bytes) when dropout > 0, and the rank-r intermediate (r·e).
    Methods that leave every base linear frozen (FROZEN_BASE_METHODS) keep less: no linear saves its
    input (measured on the CPU: IA3 and bottleneck adapters held 0.79 of the full count).
    """
    i = card.intermediate
    gelu = not card.gated_mlp
    if method.kind in FROZEN_BASE_METHODS:
        # a frozen linear saves no input (its weight gradient is never computed): SDPA's q, k, v and
        # output, the activation's input and (SwiGLU) its output and up, and each norm's input remain
        mlp = i if gelu else 3 * i
        norms = 2 * (norm_bytes(card, e, compiled) - card.hidden * e)
    else:
        mlp = 2 * i if gelu else 4 * i
        norms = 2 * norm_bytes(card, e, compiled)
    values = 2 * card.q_dim + 2 * card.kv_dim + mlp
    extra = 0.0
    if method.kind == "ia3":  # the scaled side of each target (the unscaled output or the input)
        ff = set(method.feedforward)
        extra = sum((d_in if name in ff else d_out) * e for name, d_in, d_out, _ in layer_linears(card)
                    if name in set(method.targets))
    if method.kind in ("lora", "qlora"):
        wanted = set(method.targets)
        for name, d_in, _, _ in layer_linears(card):
            if name in wanted:
                extra += method.r * e + (d_in * (e + 1) if method.dropout > 0 else 0)
    elif method.kind == "adapter":  # down output, activation output, dropout per placement
        extra = len(set(method.placement)) * (2 * method.bottleneck + card.hidden) * 4
    return values * e + norms + extra


def activation_bytes(card: Card, method, seq: int, batch: int, checkpointing: bool, e: int,
                     attention: Attention = "sdpa", mask: bool = True, offload: bool = False,
                     compiled: bool = False, kv_extra: int = 0) -> int:
    """Saved activations of the blocks for one micro-batch (+ the final norm and the head's input).
    kv_extra: positions that are keys and values only (prefix tuning's virtual tokens)."""
    return int(sum(_activation_parts(card, method, seq, batch, checkpointing, e, attention, mask, offload,
                                     compiled, kv_extra)))


def _activation_parts(card: Card, method, seq: int, batch: int, checkpointing: bool, e: int,
                      attention: Attention, mask: bool, offload: bool, compiled: bool,
                      kv_extra: int = 0) -> tuple[float, float]:
    """(kept through the whole backward, one recomputed block under checkpointing else 0): the recomputed
    block exists only after the head's backward freed the logits (`estimate` overlaps them)."""
    per_layer = seq * batch * _saved_per_token(card, method, e, compiled) + kv_extra * batch * 2 * card.kv_dim * e
    if attention == "eager":
        per_layer += batch * card.heads * seq * (seq + kv_extra) * (4 + e)  # fp32 softmax output + its e copy
    kept = seq * batch * norm_bytes(card, e, compiled)  # the final norm (its output is the head's input)
    if mask and attention != "flash":
        kept += batch * seq * (seq + kv_extra)  # transformers' 4D bool mask (padding or packing)
    if not checkpointing:
        return kept + card.layers * per_layer, 0.0
    layers = 2 if offload else card.layers  # offloaded: the one being copied and the one prefetched
    return kept + layers * seq * batch * card.hidden * e, per_layer  # layer inputs; the block recomputed


def logits_bytes(card: Card, seq: int, batch: int, e: int, task: TaskSpec | None, chunked: bool) -> int:
    if task is not None and task.kind == "classify":
        return batch * max(len(task.labels), 2) * 4 * 3
    # transformers' ForCausalLMLoss upcasts to fp32: the forward holds the e-logits, the fp32 copy and
    # log_softmax's fp32 output (e + 8); log_softmax's backward holds three fp32 tensors (its saved
    # output, the incoming gradient nll_loss's backward made dense, and the outgoing gradient): 12.
    # ftlang's chunked loss (backend/loss.py) checkpoints each of LOSS_CHUNKS slices: only one slice's
    # logits ever exist, in the forward and again when the backward recomputes it.
    per = max(e + 8, 12)
    return int(batch * seq * card.vocab * per / (LOSS_CHUNKS if chunked else 1))


# ---------------------------------------------------------------------------- states


def _base_param_bytes(card: Card, method, train: TrainPlan, rt: Runtime) -> float:
    """The base model's weights on one device before sharding (trainable copies excluded)."""
    total = total_params(card)
    half = train.precision in ("bf16", "fp16")
    if method.kind == "full":
        if rt.pure_16bit:
            return 2 * total
        return total * (6 if half else 4)  # fp32 weights + autocast's kept 16-bit copies
    if method.kind == "qlora":
        bits = _quant_bits(method)
        quantized = linear_params(card)
        rest_bytes = 2 if rt.pure_16bit else 4  # prepare_model_for_kbit_training upcasts the rest to fp32
        return quantized * bits / 8 + (total - quantized) * rest_bytes
    if getattr(method, "load_in_8bit", None):  # LLM.int8 linears, the rest upcast to fp32 like qlora
        quantized = linear_params(card)
        return quantized * INT8_BITS / 8 + (total - quantized) * (2 if rt.pure_16bit else 4)
    # backend/load.py loads a PEFT-frozen base in the 16-bit precision; ftlang's own
    # bottleneck adapters keep an fp32 base (they compute outside autocast)
    return total * (2 if half and method.kind != "adapter" else 4)


def _quant_bits(method) -> float:
    """Bits per weight of a 4-bit (or int8) base linear."""
    q = method.quant
    return INT8_BITS if q.type == "int8" else (NF4_BITS_DOUBLE_QUANT if q.double_quant else NF4_BITS)


def _gathered_layer_bytes(card: Card, method, e: int) -> float:
    """One FSDP unit (a decoder block) all-gathered: its linears in e, or in their packed 4-bit bytes for
    qlora (the quant storage dtype only packs them: FSDP gathers the storage, bitsandbytes dequantizes
    one matmul's weight at a time)."""
    bits = _quant_bits(method) if method.kind == "qlora" else 8 * e
    return _layer_params(card) * bits / 8


def _adafactor_bytes(card: Card, method, trainable: int) -> int:
    """transformers' Adafactor (no first moment): a row and a column vector per matrix, full state for vectors."""
    if method.kind == "full":
        heads = 1 if card.tie_embeddings or card.arch == "encoder" else 2
        rows_cols = sum(i + o for _, i, o, _ in layer_linears(card)) * card.layers + (card.vocab + card.hidden) * heads
        vectors = trainable - linear_params(card) - card.vocab * card.hidden * heads
        return 4 * (rows_cols + max(0, vectors))
    if method.kind in ("lora", "qlora"):
        r = method.r
        return 4 * targets_count(card, method.targets, lambda _n, i, o: 2 * r + i + o)
    if method.kind == "adapter":
        per = 2 * (method.bottleneck + card.hidden) + method.bottleneck + card.hidden
        return 4 * per * len(set(method.placement)) * card.layers
    if method.kind == "prompt":
        return 4 * (method.virtual_tokens + card.hidden)
    return 4 * trainable


def optimizer_bytes(card: Card, method, train: TrainPlan, trainable: int, rt: Runtime) -> int:
    opt = train.optimizer
    if opt.startswith("paged_"):
        return 0  # bitsandbytes pages these out under pressure: they never make a device run out
    if opt == "adamw":
        return trainable * (4 if rt.pure_16bit else 8)
    if opt == "adamw_8bit":
        small = 0
        if method.kind in ("lora", "qlora"):
            small = targets_count(card, method.targets,
                                   lambda _n, i, o: sum(n for n in (method.r * i, method.r * o)
                                                        if n < BNB_MIN_8BIT_SIZE))
        return 2 * trainable + 6 * small
    if opt == "adafactor":
        return _adafactor_bytes(card, method, trainable)
    return 0  # sgd without momentum


def _head_trains(card: Card, method) -> bool:
    """Whether the output projection has a gradient: full fine-tuning, or PEFT modules_to_save naming it (or,
    tied, the embeddings)."""
    saved = set(getattr(method, "modules_to_save", None) or [])
    return method.kind == "full" or bool(saved & HEAD_MODULES) or (card.tie_embeddings
                                                                    and bool(saved & EMBEDDING_MODULES))


def _layer_params(card: Card) -> int:
    return sum(i * o for _, i, o, _ in layer_linears(card))


def _world(hardware: HardwarePlan) -> int:
    return max(1, hardware.count * hardware.nodes)


# ---------------------------------------------------------------------------- the estimate


def default_seq(method, train: TrainPlan) -> int:
    """Tokens per row the activations assume without data: max_seq_len (+ a method's virtual tokens)."""
    return train.max_seq_len + (getattr(method, "virtual_tokens", 0) or 0)


def estimate(card: Card, method, train: TrainPlan, hardware: HardwarePlan, task: TaskSpec | None = None, *,
             seq: int | None = None, runtime: Runtime | None = None, device: str | None = None) -> Estimate:
    """Peak memory per device. `seq`: the padded length of the longest batch when the data is known;
    `device`: where the run trains, when known (a run knows; the checker only when hardware says cpu)."""
    rt = runtime or runtime_of(card, method, train, hardware)
    total = total_params(card)
    trainable = trainable_params(card, method)
    if task is not None and task.kind == "classify":  # a classification head replaces the LM head
        lm_head = 0 if card.tie_embeddings or card.arch == "encoder" else card.vocab * card.hidden
        head = classifier_params(card, len(task.labels))
        total += head - lm_head
        trainable = total if method.kind == "full" else trainable + head
    e = 2 if train.precision in ("bf16", "fp16") or rt.pure_16bit else 4
    world = _world(hardware)
    weights = _base_param_bytes(card, method, train, rt)
    if method.kind != "full":
        weights += (2 if rt.pure_16bit else 4) * trainable
    grads = (2 if rt.pure_16bit else 4) * trainable
    optimizer = optimizer_bytes(card, method, train, trainable, rt)
    overhead = 0.0
    if rt.zero_stage >= 2 and world > 1:
        if hardware.strategy == "deepspeed" and method.kind == "full" and not rt.pure_16bit and e == 2:
            weights = 2 * total + 4 * total / world  # bf16 module + the fp32 master partition
        grads, optimizer = grads / world, optimizer / world
        if rt.zero_stage >= 3:
            weights /= world
            # two gathered blocks (the current one and the prefetched next), in e, and the root unit
            root = card.vocab * card.hidden * (1 if card.tie_embeddings else 2)
            overhead = 2 * _gathered_layer_bytes(card, method, e) + root * e
            if method.kind == "full":
                overhead += _layer_params(card) * e  # the current block's unsharded gradient
    elif rt.zero_stage == 1 and world > 1:  # ZeRO-1: the optimizer state sharded, gradients all-reduced
        optimizer, overhead = optimizer / world, grads
    elif world > 1 and rt.ddp_buckets and hardware.strategy in ("ddp", "none"):
        overhead = grads  # the all-reduce buckets
    if rt.offload_optimizer:
        optimizer = 0
    if rt.offload_params:
        weights = 0
        if hardware.strategy == "fsdp":  # CPUOffload(offload_params=True) moves the gradient shards too
            grads = 0
    if rt.optimizer_in_backward:
        grads = 0
    if seq is None:
        seq = default_seq(method, train)
    # prefix tuning's virtual tokens are past keys and values: the hidden states and logits have the rows' length
    kv_only = method.virtual_tokens if method.kind == "prefix" else 0
    kept, recomputed = _activation_parts(card, method, seq - kv_only, train.batch, train.gradient_checkpointing,
                                         e, rt.attention, True, rt.offload_activations, rt.compiled, kv_only)
    acts = int(kept + recomputed)
    logits = logits_bytes(card, seq - kv_only, train.batch, e, task, rt.chunked_loss)
    loss_peak = logits
    if rt.chunked_loss and _head_trains(card, method):
        # the first slice's backward makes the head's gradient while every activation is still live; the next
        # slices' gradients are summed out of place (AccumulateGrad: the old, the new and their sum)
        g = card.vocab * card.hidden * (2 if rt.pure_16bit else 4)
        loss_peak = max(logits + g, 3 * g)
    transient = kept + max(loss_peak, recomputed)  # checkpointing recomputes a block after the head's backward
    if train.grad_accum > 1 or method.kind != "full":
        live = transient + grads
    else:  # set_to_none zero_grad: gradients fill as the activations are freed
        live = max(transient, grads)
    process = CPU_RUNTIME_BYTES if (device or hardware.device) == "cpu" else 0
    peak = weights + optimizer + live + overhead + process
    mem = MemoryEstimate(weights_bytes=int(weights + overhead), gradients_bytes=int(grads),
                         optimizer_bytes=int(optimizer), activations_bytes=int(acts), logits_bytes=int(logits),
                         runtime_bytes=process, peak_bytes=int(peak))
    return Estimate(trainable, total, mem)


def resources_plan(card: Card, method, train: TrainPlan, hardware: HardwarePlan, task: TaskSpec | None = None,
                   *, seq: int | None = None, seq_source: str = "max_seq_len", rows: float | None = None,
                   mean_seq: float | None = None, device: str | None = None) -> ResourcesPlan:
    """The plan's `resources`: params, memory, and (throughput.py) time and cost.

    seq: the padded length of the longest batch (data known) and seq_source where it came from;
    rows: training rows (None: unknown); mean_seq: the mean padded batch length (time)."""
    from ftlang.semantic.throughput import time_and_cost

    est = estimate(card, method, train, hardware, task, seq=seq, device=device)
    capacity = hardware.memory_bytes
    fits = capacity is None or est.memory.peak_bytes <= capacity
    used = seq if seq is not None else default_seq(method, train)
    rt = runtime_of(card, method, train, hardware)
    plan = ResourcesPlan(trainable_params=est.trainable, total_params=est.total, fits=fits, memory=est.memory,
                         device_memory_bytes=capacity, seq_len=used, seq_len_source=seq_source,
                         attention=rt.attention, rows=rows)
    time, cost = time_and_cost(card, method, train, hardware, task, plan, rows=rows, mean_seq=mean_seq)
    return plan.model_copy(update={"time": time, "cost": cost})


def lengths_summary(lengths: list[int], batch: int, packed: bool) -> dict:
    """What the estimate needs from the data's token lengths (rows, or packed bins, after truncation):
    the longest row (the longest batch pads to it) and the mean padded length of a random batch."""
    from ftlang.semantic.throughput import expected_batch_max

    n = len(lengths)
    return {"rows": n, "max": max(lengths, default=0), "mean": (sum(lengths) / n) if n else 0.0,
            "padded_mean": expected_batch_max(lengths, batch), "packed": packed}


def plan_resources(plan, lengths: dict | None = None, device: str | None = None) -> ResourcesPlan:
    """A plan's resources again, from its own sections; `lengths` (lengths_summary) makes them data-aware,
    `device` (cpu, cuda) counts what that device's process adds."""
    from ftlang.semantic.cards import card_from_plan

    card = card_from_plan(plan.model)
    rows, seq, mean_seq = plan.resources.rows, None, None
    source = "max_seq_len"
    if lengths and lengths.get("rows"):
        extra = getattr(plan.method, "virtual_tokens", 0) or 0
        rows, seq, mean_seq = lengths["rows"], int(lengths["max"]) + extra, lengths["padded_mean"] + extra
        source = "packing" if lengths.get("packed") else "data"
    return resources_plan(card, plan.method, plan.train, plan.hardware, plan.model.task, seq=seq,
                          seq_source=source, rows=rows, mean_seq=mean_seq, device=device)


def compare_hardware(plan, lengths: dict | None = None) -> list[tuple[str, ResourcesPlan, HardwarePlan]]:
    """The plan's resources on every catalog GPU that fits it (the recipe's count, nodes and strategy;
    GPUs without bf16 skipped for a bf16 plan), cheapest first."""
    from ftlang.semantic.context import hardware_catalog

    out = []
    for name, info in hardware_catalog().items():
        if plan.train.precision == "bf16" and not info.get("bf16"):
            continue
        hw = plan.hardware.model_copy(update={"gpu": name, "memory_bytes": int(info["memory_bytes"]),
                                              "price_per_hour": info.get("price_per_hour"), "device": "cuda"})
        res = plan_resources(plan.model_copy(update={"hardware": hw}), lengths)
        if res.fits:
            out.append((name, res, hw))
    out.sort(key=lambda t: (t[1].cost.usd if t[1].cost else float("inf"), t[0]))
    return out


def recorded_lengths(plan) -> dict | None:
    """The data lengths a finished or running `ftlang run` of this same plan recorded (runs/<recipe>/
    <hash12>-*/data.json), newest first: how `ftlang check --data` knows token lengths without a tokenizer."""
    import json

    from ftlang.semantic.paths import is_dir

    root = plan.resolve("runs") / plan.recipe.name
    if not is_dir(root):  # never raises, also for a recipe name longer than a file name may be
        return None
    for d in sorted(root.glob(f"{plan.short_hash}-*"), key=lambda p: p.name, reverse=True):
        try:
            lengths = json.loads((d / "data.json").read_text(encoding="utf-8")).get("lengths")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(lengths, dict) and lengths.get("rows"):
            return lengths
    return None


