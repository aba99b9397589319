"""Method rules: quantization, merging, targets, and train settings a method cannot take."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ftlang.diagnostics import Diagnostic, error, warning
from ftlang.semantic.rules.registry import rule
from ftlang.semantic.values import did_you_mean
from ftlang.syntax import ast

if TYPE_CHECKING:
    from ftlang.semantic.context import RecipeContext


@rule("FT301")
def qlora_quant(ctx: RecipeContext) -> Iterator[Diagnostic]:
    if ctx.method_kind != "qlora":
        return
    q = ctx.blocks.get("method") and ctx.blocks["method"].blocks.get("quant")
    if q is not None and q.has("type") and q.get("type") not in ("nf4", "fp4"):
        yield error("FT301", f"qlora needs a 4-bit quant type, not `{q.get('type')}`", q.span_of("type"),
                    "write quant { type = nf4 } (or fp4); for 8-bit or unquantized training use method lora")


def _target_nodes(tb, key: str) -> list[ast.Value]:
    f = tb.values.get(key)
    if f is None:
        return []
    return list(f.node.items) if isinstance(f.node, ast.ListValue) else [f.node]


@rule("FT209")
def targets_exist(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("method")
    card = ctx.card
    if tb is None or card is None or ctx.method_kind not in ("lora", "qlora", "ia3"):
        return
    known = list(card.modules) + list(card.aliases)
    for key in ("targets", "feedforward"):
        for node in _target_nodes(tb, key):
            name = node.name if isinstance(node, ast.Ident) else getattr(node, "value", None)
            if isinstance(name, str) and name not in known:
                guess = did_you_mean(name, known)
                msg = f"no module `{name}` in the model card `{card.name or card.family + ' (from config.json)'}`"
                yield error("FT209", f"{msg}: did you mean `{guess}`?" if guess else msg, node.span,
                            f"replace `{name}` with `{guess}`" if guess else
                            f"modules: {', '.join(card.modules)}; aliases: {', '.join(card.aliases)}")


@rule("FT308")
def trains_something(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("method")
    if tb is None or ctx.method_kind not in ("lora", "qlora", "ia3") or not tb.has("targets"):
        return
    if tb.get("targets") == []:
        yield error("FT308", "`targets = []` adapts no module: the run would train zero parameters",
                    tb.span_of("targets"), "list the modules to adapt, e.g. targets = [q_proj, v_proj], or leave "
                    "`targets` out to adapt the card's all_linear")


@rule("FT306")
def ia3_feedforward(ctx: RecipeContext) -> Iterator[Diagnostic]:
    m = ctx.method
    if ctx.method_kind != "ia3" or m is None:
        return
    extra = [f for f in m.feedforward if f not in m.targets]
    if extra:
        tb = ctx.blocks["method"]
        yield error("FT306", f"feedforward module(s) {', '.join(extra)} are not in targets", tb.span_of("feedforward"),
                    "add them to targets, or remove them from feedforward")


@rule("FT302")
def merge_refused(ctx: RecipeContext) -> Iterator[Diagnostic]:
    ex = ctx.blocks.get("export")
    if ex is not None and ex.get("merge") and ctx.method_kind in ("prefix", "prompt", "adapter"):
        yield error("FT302", f"a {ctx.method_kind} method cannot be merged into the base model", ex.span_of("merge"),
                    "set merge = false (the adapter is exported on its own), or use lora / qlora / ia3")


@rule("FT303")
def prompt_learning_train(ctx: RecipeContext) -> Iterator[Diagnostic]:
    if ctx.method_kind not in ("prefix", "prompt"):
        return
    tb, eb = ctx.blocks.get("train"), ctx.blocks.get("eval")
    for block, key in ((tb, "packing"), (tb, "gradient_checkpointing"), (eb, "packing")):
        if block is not None and block.get(key):
            yield error("FT303", f"`{key} = true` cannot be used with {ctx.method_kind} tuning", block.span_of(key),
                        f"set {key} = false, or use lora")


@rule("FT304")
def epochs_or_steps(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("train")
    if tb is not None and tb.has("epochs") and tb.has("max_steps"):
        yield error("FT304", "`epochs` and `max_steps` are both set", tb.span_of("max_steps"),
                    "keep one: epochs = N passes, or max_steps = N optimizer steps")


@rule("FT305")
def bf16_support(ctx: RecipeContext) -> Iterator[Diagnostic]:
    if ctx.gpu is None or ctx.gpu.get("bf16", True):
        return
    tb = ctx.blocks.get("train")
    if tb is not None and tb.get("precision") == "bf16":
        yield error("FT305", f"{ctx.hardware.gpu} does not support bf16", tb.span_of("precision"),
                    "use precision = fp16 on this GPU")
    m = ctx.blocks.get("method")
    q = m.blocks.get("quant") if m is not None else None
    if ctx.method_kind == "qlora" and q is not None and q.get("compute_dtype") == "bf16":
        yield error("FT305", f"{ctx.hardware.gpu} does not support bf16", q.span_of("compute_dtype")
                    if q.has("compute_dtype") else q.span, "use compute_dtype = fp16 on this GPU")


#: GPU generations FlashAttention-2 does not support (it needs sm80+: Ampere and newer)
_NO_FLASH_ARCHS = frozenset({"turing", "volta", "pascal"})


@rule("FT309")
def flash_attention_support(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("train")
    if tb is None or tb.get("attention") != "flash_attention_2":
        return
    if ctx.hardware is not None and ctx.hardware.device == "cpu":
        yield error("FT309", "flash_attention_2 needs a CUDA GPU, and this recipe trains on the CPU",
                    tb.span_of("attention"), "use attention = sdpa on the CPU")
    elif ctx.gpu is not None and ctx.gpu.get("arch") in _NO_FLASH_ARCHS:
        yield error("FT309", f"{ctx.hardware.gpu} ({ctx.gpu['arch']}) does not support flash_attention_2",
                    tb.span_of("attention"), "use attention = sdpa on this GPU (flash attention needs Ampere or newer)")
    elif ctx.train is not None and ctx.train.precision == "fp32":
        yield error("FT309", "flash_attention_2 computes in fp16 or bf16, and this recipe trains in fp32",
                    tb.span_of("attention"), "set precision = bf16 (or fp16), or use attention = sdpa")


@rule("FT310")
def modules_to_save_exist(ctx: RecipeContext) -> Iterator[Diagnostic]:
    from ftlang.semantic.cards import EMBEDDING_MODULES, HEAD_MODULES

    tb, card = ctx.blocks.get("method"), ctx.card
    if tb is None or card is None or ctx.method_kind not in ("lora", "qlora"):
        return
    known = sorted(EMBEDDING_MODULES | HEAD_MODULES | set(card.modules))
    for node in _target_nodes(tb, "modules_to_save"):
        name = node.name if isinstance(node, ast.Ident) else getattr(node, "value", None)
        if isinstance(name, str) and name not in known:
            guess = did_you_mean(name, known)
            yield error("FT310", f"`modules_to_save` names no module `{name}`" + (f": did you mean `{guess}`?"
                        if guess else ""), node.span, f"modules: {', '.join(known)}")


@rule("FT411")
def added_tokens_train(ctx: RecipeContext) -> Iterator[Diagnostic]:
    from ftlang.semantic.cards import EMBEDDING_MODULES

    tb = ctx.blocks.get("train")
    if tb is None or not tb.get("add_tokens") or ctx.method_kind in (None, "full"):
        return
    if EMBEDDING_MODULES & set(getattr(ctx.method, "modules_to_save", None) or []):
        return
    yield warning("FT411", f"the added tokens' embeddings stay frozen under method {ctx.method_kind}",
                  tb.span_of("add_tokens"), "add modules_to_save = [embed_tokens, lm_head] to the method "
                  "(lora/qlora), or use method full")


@rule("FT311")
def pure_bf16_precision(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("train")
    if tb is not None and tb.get("pure_bf16") and tb.get("precision") != "bf16":
        yield error("FT311", "pure_bf16 trains every tensor in bf16, and the precision is not bf16",
                    tb.span_of("pure_bf16"), "add precision = bf16 (or drop pure_bf16 for mixed precision)")



@rule("FT313")
def fsdp_qlora_storage(ctx: RecipeContext) -> Iterator[Diagnostic]:
    m = ctx.method
    if ctx.method_kind != "qlora" or m is None or ctx.hardware.strategy != "fsdp":
        return
    if m.quant.storage is not None and m.quant.storage != m.quant.compute_dtype:
        q = ctx.blocks["method"].blocks["quant"]
        yield error("FT313", f"fsdp cannot shard 4-bit weights stored as {m.quant.storage} beside "
                    f"{m.quant.compute_dtype} compute", q.span_of("storage"),
                    f"write storage = {m.quant.compute_dtype}, or leave it out (the compute dtype under fsdp)")


@rule("FT312")
def chunked_loss(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("train")
    if tb is None or tb.get("loss") != "chunked":
        return
    if ctx.task.kind == "classify":
        yield error("FT312", "`loss = chunked` is a causal-LM loss; a classify task has no LM head",
                    tb.span_of("loss"), "remove `loss = chunked`")
    elif ctx.method_kind in ("prefix", "prompt"):
        yield error("FT312", f"`loss = chunked` cannot be used with {ctx.method_kind} tuning (its virtual tokens "
                    "shift the positions inside PEFT's forward)", tb.span_of("loss"),
                    "remove `loss = chunked`, or use lora")


@rule("FT314")
def sharding_options(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb, hw = ctx.blocks.get("hardware"), ctx.hardware
    if tb is None:
        return
    wrong = {"zero_stage": ("deepspeed", "fsdp"), "offload_optimizer": ("deepspeed",),
             "offload_params": ("deepspeed", "fsdp"), "wrap": ("fsdp",), "state_dict": ("fsdp",)}
    for key, strategies in wrong.items():
        if tb.has(key) and hw.strategy not in strategies:
            yield error("FT314", f"`{key}` configures strategy {' or '.join(strategies)}, and this recipe uses "
                        f"{hw.strategy}", tb.span_of(key), f"set strategy = {strategies[0]}, or remove `{key}`")
            return
    if hw.strategy == "fsdp" and hw.zero_stage == 1:
        yield error("FT314", "fsdp has no stage 1 (it shards gradients with the optimizer state)",
                    tb.span_of("zero_stage"), "use zero_stage = 2 (SHARD_GRAD_OP) or 3 (FULL_SHARD)")
    elif hw.strategy == "deepspeed" and hw.offload_params and (hw.zero_stage or 2) < 3:
        yield error("FT314", "deepspeed offloads weights only at ZeRO-3", tb.span_of("offload_params"),
                    "set zero_stage = 3, or use offload_optimizer alone")
