"""The typed hand-off between the run's stages: one object, no globals.

`ftlang run` (backend/run.py) builds it once the data is prepared and the model loaded; `train(ctx)`
trains `ctx.model` on `ctx.data`, then `ftlang.backend.finish.after_training(ctx)` evaluates, checks
gates, exports, registers and writes the report, returning the process exit code (0, or 3 when a
gate failed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftlang.plan import Plan

if TYPE_CHECKING:
    from ftlang.data.prepare import Prepared


@dataclass
class RunContext:
    plan: Plan
    run_dir: Path  # runs/<recipe>/<hash12>-<UTC stamp>/ (or --out)
    model: Any  # the model being trained (a PeftModel, ftlang's adapter model, or the full model)
    tokenizer: Any
    data: Prepared  # the data stage's output: train / validation rows, collator, stats, fingerprints
    #: every metrics.jsonl row written during training: {"step", "epoch", "loss"|"val_loss", "lr", ...}
    history: list[dict] = field(default_factory=list)
    #: wall seconds per stage ("load", "data", "train", ...) and train tokens/s
    timings: dict[str, float] = field(default_factory=dict)
    #: loads a fresh, unquantized copy of the base model (forgetting baseline, merge for export)
    load_base: Callable[[], Any] | None = None
    #: metrics of the base model before training, computed by the eval stage when it runs first
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    #: the base model's answers to a few held-out prompts (evaluate.sample_answers), for the report
    baseline_samples: list[dict] = field(default_factory=list)
    device: str | None = None  # None: detected from the plan when training starts
    force: bool = False  # --force: export even when a gate fails (recorded in the report)
    peak_memory_bytes: int | None = None  # measured (RSS on CPU, max_memory_allocated on CUDA)
    log: Callable[[str], None] = print  # progress lines (stderr under the CLI)
