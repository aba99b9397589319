"""The resource check: the estimated peak memory per device must fit the declared hardware."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ftlang.diagnostics import Diagnostic, error
from ftlang.semantic.resources import estimate
from ftlang.semantic.rules.registry import rule
from ftlang.semantic.units import human_bytes

if TYPE_CHECKING:
    from ftlang.semantic.context import RecipeContext


@rule("FT501")
def memory_fits(ctx: RecipeContext) -> Iterator[Diagnostic]:
    hw = ctx.hardware
    if hw.memory_bytes is None or ctx.card is None or ctx.method is None or ctx.train is None:
        return
    est = estimate(ctx.card, ctx.method, ctx.train, hw, ctx.task)
    m = est.memory
    if m.peak_bytes <= hw.memory_bytes:
        return
    node = ctx.block_nodes.get("hardware")
    tb = ctx.blocks.get("hardware")
    span = tb.span_of("gpu") if tb is not None and tb.has("gpu") else (
        tb.span_of("memory") if tb is not None else node.span)
    remedies, applied = [], []
    if ctx.method_kind != "qlora":
        remedies.append("method qlora (4-bit base weights)")
    else:
        applied.append("qlora")
    if not ctx.train.gradient_checkpointing:
        remedies.append("train { gradient_checkpointing = true }")
    else:
        applied.append("gradient checkpointing")
    remedies.append(f"a smaller batch (now {ctx.train.batch}; raise grad_accum to keep the effective batch)")
    remedies.append(f"a smaller max_seq_len (now {ctx.train.max_seq_len})")
    done = f" (already applied: {', '.join(applied)})" if applied else ""
    yield error(
        "FT501",
        f"estimated peak memory {human_bytes(m.peak_bytes)} per device exceeds the "
        f"{human_bytes(hw.memory_bytes)} of {hw.gpu or 'the declared device'}",
        span, "try " + "; ".join(remedies) + done + "; or a GPU with more memory",
        notes=(f"weights {human_bytes(m.weights_bytes)}, gradients {human_bytes(m.gradients_bytes)}, "
               f"optimizer {human_bytes(m.optimizer_bytes)}, activations {human_bytes(m.activations_bytes)}, "
               f"logits {human_bytes(m.logits_bytes)}",))
