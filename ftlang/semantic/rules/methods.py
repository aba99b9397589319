"""Method rules: quantization, merging, targets, and train settings a method cannot take."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ftlang.diagnostics import Diagnostic, error
from ftlang.semantic.rules import rule
from ftlang.semantic.values import did_you_mean
from ftlang.syntax import ast

if TYPE_CHECKING:
    from ftlang.semantic.build import RecipeContext


@rule("FT301", "qlora needs a 4-bit quant type", explain="""
QLoRA trains LoRA adapters over a base model quantized to 4 bits (bitsandbytes NF4 or FP4).
`quant { type = int8 }` is 8-bit quantization, which QLoRA does not use: write `type = nf4`
(recommended) or `fp4`.""")
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


@rule("FT209", "target module not in the model card", explain="""
LoRA, QLoRA and IA3 targets are module leaf names from the model card (`modules = [...]`) or the
card's aliases (`attention`, `mlp`, `all_linear`). A name the card does not list would match no
layer and PEFT would fail at run time; the checker reports it with the nearest name.""")
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


@rule("FT306", "ia3 feedforward modules must be targets", explain="""
IA3's `feedforward` lists which of its `targets` sit on the feed-forward path (their input is
rescaled instead of their output). PEFT requires every feedforward module to also be a target.""")
def ia3_feedforward(ctx: RecipeContext) -> Iterator[Diagnostic]:
    m = ctx.method
    if ctx.method_kind != "ia3" or m is None:
        return
    extra = [f for f in m.feedforward if f not in m.targets]
    if extra:
        tb = ctx.blocks["method"]
        yield error("FT306", f"feedforward module(s) {', '.join(extra)} are not in targets", tb.span_of("feedforward"),
                    "add them to targets, or remove them from feedforward")


@rule("FT302", "merge refused for prefix, prompt and adapter methods", explain="""
Merging folds trained weights into the base model. LoRA, QLoRA and IA3 updates are linear and merge
exactly; prefix tuning, prompt tuning and bottleneck adapters add tokens or layers that have no
place in the base weights, so `export { merge = true }` is refused for them.""")
def merge_refused(ctx: RecipeContext) -> Iterator[Diagnostic]:
    ex = ctx.blocks.get("export")
    if ex is not None and ex.get("merge") and ctx.method_kind in ("prefix", "prompt", "adapter"):
        yield error("FT302", f"a {ctx.method_kind} method cannot be merged into the base model", ex.span_of("merge"),
                    "set merge = false (the adapter is exported on its own), or use lora / qlora / ia3")


@rule("FT303", "packing and gradient checkpointing refused with prefix/prompt tuning", explain="""
Prefix and prompt tuning prepend virtual tokens to every sequence: packing several examples into one
sequence would let them share one prefix and break the attention layout, and PEFT's prompt
learning does not support gradient checkpointing of the base model.""")
def prompt_learning_train(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("train")
    if tb is None or ctx.method_kind not in ("prefix", "prompt"):
        return
    for key in ("packing", "gradient_checkpointing"):
        if tb.get(key):
            yield error("FT303", f"`{key} = true` cannot be used with {ctx.method_kind} tuning", tb.span_of(key),
                        f"set {key} = false, or use lora")


@rule("FT304", "epochs and max_steps both set", explain="""
Training stops after `epochs` passes or after `max_steps` optimizer steps; giving both leaves it
unclear which one is meant. Keep one.""")
def epochs_or_steps(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("train")
    if tb is not None and tb.has("epochs") and tb.has("max_steps"):
        yield error("FT304", "`epochs` and `max_steps` are both set", tb.span_of("max_steps"),
                    "keep one: epochs = N passes, or max_steps = N optimizer steps")


@rule("FT305", "bf16 on a GPU without bf16", explain="""
bfloat16 needs an Ampere or newer GPU. The hardware catalog marks which ones (a T4 does not):
use `precision = fp16` (and `compute_dtype = fp16` for qlora) there.""")
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
