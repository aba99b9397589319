"""Training faults turned into diagnostics: non-finite loss, out of memory, a full disk, interruption."""

from __future__ import annotations

import errno
from pathlib import Path

from ftlang.diagnostics import Diagnostic, DiagnosticError, error, info
from ftlang.plan import Plan
from ftlang.semantic.units import human_bytes
from ftlang.source import loc_span


class NonFiniteLoss(Exception):
    """Raised from inside the training step when the loss is NaN or infinite."""

    def __init__(self, step: int, value: float):
        super().__init__(f"loss is {value} at step {step}")
        self.step = step
        self.value = value


class LossSpike(NonFiniteLoss):
    """Raised from inside the training step when the loss jumps above `train { loss_spike }` times its recent mean."""

    def __init__(self, step: int, value: float, mean: float, factor: float):
        super().__init__(step, value)
        self.args = (f"loss {value:.4g} at step {step} is over {factor:g}× the recent mean {mean:.4g}",)
        self.mean, self.factor = mean, factor


def loss_spike_diagnostic(plan: Plan, exc: LossSpike, last_checkpoint: Path | None) -> Diagnostic:
    where = f"the last checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
    return error(
        "FT716", f"training stopped: the loss jumped to {exc.value:.4g} at step {exc.step}, over {exc.factor:g}× "
        f"the recent mean {exc.mean:.4g} (train {{ loss_spike = {exc.factor:g} }}); {where}", loc_span(plan.train.loc),
        help=f"lower lr (now {plan.train.lr:g}) or add warmup, then rerun (or --resume from the last checkpoint); "
             "raise loss_spike if such jumps are expected",
    )


def nonfinite_diagnostic(plan: Plan, step: int, value: float, last_checkpoint: Path | None) -> Diagnostic:
    where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
    return error(
        "FT704", f"training stopped: the loss became {value} at step {step}; {where}",
        loc_span(plan.train.loc),
        help=(f"lower lr (now {plan.train.lr:g}), add warmup, keep max_grad_norm set (now "
              f"{plan.train.max_grad_norm:g}), or use precision = fp32/bf16 instead of fp16; "
              "then rerun (or --resume from the last good checkpoint)"),
    )


def oom_diagnostic(plan: Plan, device: str, exc: BaseException) -> Diagnostic:
    r = plan.resources
    mem = r.memory
    declared = (f"against {human_bytes(r.device_memory_bytes)} per device" if r.device_memory_bytes
                else "no device memory declared")
    return error(
        "FT705",
        f"out of memory on {device} ({type(exc).__name__}); the plan estimated a peak of "
        f"{human_bytes(mem.peak_bytes)} (weights {human_bytes(mem.weights_bytes)}, gradients "
        f"{human_bytes(mem.gradients_bytes)}, optimizer {human_bytes(mem.optimizer_bytes)}, activations "
        f"{human_bytes(mem.activations_bytes)}, logits {human_bytes(mem.logits_bytes)}) {declared}; "
        f"{r.trainable_params:,} of {r.total_params:,} parameters train",
        loc_span(plan.train.loc),
        help=(f"lower batch (now {plan.train.batch}) and raise grad_accum, lower max_seq_len (now "
              f"{plan.train.max_seq_len}), turn on gradient_checkpointing, or switch to method qlora"),
    )


def disk_full_diagnostic(plan: Plan, exc: OSError, last_checkpoint: Path | None) -> Diagnostic:
    where = (f"the last complete checkpoint is {last_checkpoint.name}" if last_checkpoint
             else "no checkpoint was complete yet")
    return error(
        "FT714", f"no space left on device while writing {exc.filename or 'a checkpoint'}; {where}",
        loc_span(plan.train.loc),
        help=("free disk space (or point --out at a larger disk), lower save_total_limit, then continue "
              "with --resume: a half-written checkpoint is never resumed from"),
    )


def interrupted_diagnostic(run_dir: Path, last_checkpoint: Path | None, recipe_file: str) -> Diagnostic:
    state = (f"the last complete checkpoint is {last_checkpoint.name}" if last_checkpoint
             else "no checkpoint was complete yet, so a resume starts from step 0")
    return info(
        "FT712", f"interrupted; the run in {run_dir} is resumable ({state})", None,
        help=f"continue with: ftlang run {recipe_file} --resume {run_dir}",
    )


def is_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def diagnose(exc: BaseException, plan: Plan, device: str, last_checkpoint: Path | None) -> list[Diagnostic] | None:
    """The diagnostics an exception that ended a run stands for; None for an unknown one (a bug)."""
    if isinstance(exc, DiagnosticError):
        return list(exc.diagnostics)
    if isinstance(exc, LossSpike):
        return [loss_spike_diagnostic(plan, exc, last_checkpoint)]
    if isinstance(exc, NonFiniteLoss):
        return [nonfinite_diagnostic(plan, exc.step, exc.value, last_checkpoint)]
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return [disk_full_diagnostic(plan, exc, last_checkpoint)]
    if is_oom(exc):
        return [oom_diagnostic(plan, device, exc)]
    return None
