"""Training on transformers' Trainer, every `train` key of the plan mapped in `training_arguments`.

Public entry point for the CLI, the benchmarks and the fault tests:

    result = train(RunContext(plan=..., run_dir=..., model=..., tokenizer=..., data=prepared), resume=...)

`ctx.data` is the data stage's Prepared (what training reads: `.train`, `.validation`, lists of
tokenized dicts, and `.collator()`). Checkpoints go to `run_dir/checkpoints/` (atomic, see
checkpoint.py), metrics rows to `run_dir/metrics.jsonl`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlang.atomic import write_lines
from ftlang.backend import checkpoint as ckpt
from ftlang.backend.context import RunContext
from ftlang.backend.faults import LossSpike, NonFiniteLoss
from ftlang.backend.libs import training_kwargs
from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan
from ftlang.source import loc_span

METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # the metrics.jsonl rows of this run
    global_step: int = 0
    train_seconds: float = 0.0
    tokens: int = 0
    tokens_per_s: float | None = None
    stopped_early: bool = False
    resumed_from: Path | None = None
    step_times: list[float] = field(default_factory=list)  # wall seconds per optimizer step


def detect_device(plan: Plan) -> str:
    import torch

    want = plan.hardware.device
    has_cuda = torch.cuda.is_available()
    if want == "cuda" and not has_cuda:
        raise DiagnosticError(error(
            "FT701", "the plan asks for a CUDA device but none is available", loc_span(plan.hardware.loc),
            help="run on a machine with a CUDA GPU, or set hardware { device = cpu }",
        ))
    return "cuda" if has_cuda and want != "cpu" else "cpu"


def check_precision(plan: Plan, device: str) -> None:
    import torch

    p = plan.train.precision
    if p == "fp16" and device == "cpu":
        raise DiagnosticError(error(
            "FT702", "precision fp16 needs a GPU; the CPU has no fp16 mixed precision for training",
            loc_span(plan.train.loc), help="use precision = bf16 or fp32 on the CPU",
        ))
    if p == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise DiagnosticError(error(
            "FT702", f"precision bf16 is not supported by {torch.cuda.get_device_name()}",
            loc_span(plan.train.loc), help="use precision = fp16 (with max_grad_norm) or fp32 on this GPU",
        ))


def seed_everything(plan: Plan) -> None:
    """Seed before the method's weights are initialized, so LoRA/adapter init is reproducible too."""
    from transformers import enable_full_determinism, set_seed

    if plan.train.deterministic:
        enable_full_determinism(plan.train.seed)
    else:
        set_seed(plan.train.seed)


def training_arguments(plan: Plan, output_dir: Path, *, device: str, has_validation: bool,
                       tty: bool = False, train_rows: int | None = None) -> Any:
    """TrainingArguments for the plan, from the one torch-free mapping (backend/libs.py, which
    `ftlang plan --libs` prints).

    train_rows: the training rows (after packing), for `eval { every = 0.25 }` (a fraction of an epoch)."""
    from transformers import TrainingArguments

    check_precision(plan, device)
    return TrainingArguments(**training_kwargs(plan, output_dir, device=device, has_validation=has_validation,
                                               tty=tty, train_rows=train_rows))


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _build_trainer_classes():
    """Trainer subclass and callbacks, defined lazily so importing this module stays torch-free."""
    # long: three classes that subclass transformers' types, so they can only be defined after the import
    import torch
    from transformers import Trainer, TrainerCallback

    class FtlangTrainer(Trainer):
        """Checks every step's loss and counts the tokens it trained on (non-padding)."""

        ft_tokens: Any = 0
        ft_step_times: list[float]
        ft_loss_spike: float | None = None  # train { loss_spike }
        ft_eval_collator: Any = None  # eval { packing } with unpacked training: the packed collator
        ft_chunked_loss: bool = False  # train { loss = chunked }

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # evaluation asks for the outputs; with prediction_loss_only (ours) it reads none of them
            if not self.ft_chunked_loss or (return_outputs and not self.args.prediction_loss_only):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            from ftlang.backend.loss import chunked_lm_loss

            # normalized as transformers' own loss is (by the accumulated label count when the model
            # takes it), so the Trainer's gradient-accumulation scaling stays the same
            n = num_items_in_batch if self.model_accepts_loss_kwargs else None
            loss = chunked_lm_loss(model, inputs, n, unwrapped=self.accelerator.unwrap_model(model))
            if self.args.average_tokens_across_devices and n is not None:  # as Trainer.compute_loss scales
                scale = self.accelerator.num_processes // self.get_tp_size()
                loss = loss * (scale if self.args.n_gpu <= 1 else self.args.n_gpu)
            return (loss, {}) if return_outputs else loss

        def get_eval_dataloader(self, eval_dataset=None):
            if self.ft_eval_collator is None:
                return super().get_eval_dataloader(eval_dataset)
            train_collator, self.data_collator = self.data_collator, self.ft_eval_collator
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = train_collator

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            mask = inputs.get("attention_mask")
            ids = inputs.get("input_ids")
            if mask is not None and mask.dim() == 2:
                self.ft_tokens = self.ft_tokens + mask.sum()
            elif ids is not None:
                self.ft_tokens = self.ft_tokens + ids.numel()
            if not torch.isfinite(loss).all():
                value = float(loss.float().mean())
                raise NonFiniteLoss(self.state.global_step + 1, value)
            if self.ft_loss_spike is not None:
                self._watch(float(loss.float().mean()))
            return loss

        def _watch(self, value: float) -> None:
            """The loss watchdog: a step far above the recent mean stops the run (LossSpike → FT716)."""
            recent = self.ft_losses = [*getattr(self, "ft_losses", []), value][-21:]
            if len(recent) > 10:
                mean = sum(recent[:-1]) / (len(recent) - 1)
                if mean > 0 and value > self.ft_loss_spike * mean:
                    raise LossSpike(self.state.global_step + 1, value, mean, self.ft_loss_spike)

        def tokens_seen(self) -> int:
            t = self.ft_tokens
            return int(t.item()) if hasattr(t, "item") else int(t)

    class CheckpointCallback(TrainerCallback):
        """Marks each checkpoint complete after the Trainer wrote all of it, then rotates."""

        def __init__(self, root: Path, keep: int | None):
            self.root = root
            self.keep = keep

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = self.root / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    ckpt.mark_complete(folder, state.global_step)
                    ckpt.rotate(self.root, self.keep, protect=state.best_model_checkpoint
                                if args.load_best_model_at_end else None)
            return control

    class MetricsCallback(TrainerCallback):
        """metrics.jsonl rows, one concise log line per logging step (off a TTY), timing per step."""

        def __init__(self, trainer_ref: Callable[[], Any], metrics_path: Path, log: Callable[[str], None],
                     print_lines: bool, history: list[dict], step_times: list[float]):
            self.trainer_ref = trainer_ref
            self.path = metrics_path
            self.log = log
            self.print_lines = print_lines
            self.history = history
            self.step_times = step_times
            self.t0 = time.perf_counter()
            self.last_t = self.t0
            self.last_tokens = 0
            self.first_step: int | None = None
            self.step_t = self.t0

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = self.last_t = self.step_t = time.perf_counter()
            self.first_step = state.global_step
            return control

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_t = time.perf_counter()
            return control

        def on_step_end(self, args, state, control, **kwargs):
            self.step_times.append(time.perf_counter() - self.step_t)
            return control

        def _write(self, row: dict) -> None:
            self.history.append(row)
            if self.trainer_ref().is_world_process_zero():
                with open(self.path, "a") as f:
                    f.write(json.dumps(row) + "\n")

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            now = time.perf_counter()
            step = state.global_step
            epoch = round(state.epoch or 0.0, 4)
            if "loss" in logs:
                tokens = self.trainer_ref().tokens_seen()
                dt = max(now - self.last_t, 1e-9)
                tps = (tokens - self.last_tokens) / dt
                self.last_t, self.last_tokens = now, tokens
                row = {"step": step, "epoch": epoch, "loss": logs["loss"], "lr": logs.get("learning_rate"),
                       "tokens_per_s": round(tps, 1)}
                if "grad_norm" in logs:
                    row["grad_norm"] = logs["grad_norm"]
                self._write(row)
                if self.print_lines and state.is_world_process_zero:
                    done = step - (self.first_step or 0)
                    eta = (now - self.t0) / done * (state.max_steps - step) if done > 0 else 0.0
                    lr = logs.get("learning_rate") or 0.0
                    self.log(f"step {step}/{state.max_steps}  epoch {epoch:.2f}  loss {logs['loss']:.4f}  "
                             f"lr {lr:.2e}  {tps:,.0f} tok/s  ETA {_fmt_eta(eta)}")
            if "eval_loss" in logs:
                row = {"step": step, "epoch": epoch, "val_loss": logs["eval_loss"]}
                self._write(row)
                if self.print_lines and state.is_world_process_zero:
                    self.log(f"step {step}/{state.max_steps}  epoch {epoch:.2f}  val_loss {logs['eval_loss']:.4f}")
            return control

    return FtlangTrainer, CheckpointCallback, MetricsCallback


def _truncate_metrics(path: Path, step: int) -> list[dict]:
    """On resume: drop rows a killed run wrote after its last complete checkpoint; return the rest."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill
        if isinstance(row, dict) and row.get("step", 0) <= step:
            kept.append(row)
    write_lines(path, kept)
    return kept


def build_trainer(ctx: RunContext, *, callbacks: Sequence[Any] = (),
                  tty: bool | None = None) -> tuple[Any, TrainResult]:
    """The configured FtlangTrainer and the TrainResult its callbacks fill (for callers that drive it)."""
    from transformers import EarlyStoppingCallback, PrinterCallback

    plan, prepared, model, tokenizer, log = ctx.plan, ctx.data, ctx.model, ctx.tokenizer, ctx.log
    run_dir = Path(ctx.run_dir)
    device = ctx.device or detect_device(plan)
    tty = sys.stderr.isatty() if tty is None else tty
    validation = list(prepared.validation or [])
    args = training_arguments(plan, run_dir / CHECKPOINTS, device=device, has_validation=bool(validation), tty=tty,
                              train_rows=len(prepared.train))
    FtlangTrainer, CheckpointCallback, MetricsCallback = _build_trainer_classes()
    result = TrainResult()
    trainer = FtlangTrainer(
        model=model, args=args, train_dataset=prepared.train, eval_dataset=validation or None,
        data_collator=prepared.collator(), processing_class=tokenizer,
    )
    trainer.ft_loss_spike = plan.train.loss_spike
    trainer.ft_chunked_loss = plan.train.loss == "chunked"
    if getattr(prepared, "eval_packed", False):
        trainer.ft_eval_collator = prepared.eval_collator()
    trainer.remove_callback(PrinterCallback)
    if tty:
        # keep the progress bar, but print our one concise line per logging step above it, not raw dicts
        from tqdm.auto import tqdm
        from transformers import ProgressCallback

        class BarOnly(ProgressCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                return control

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarOnly())
        line_log: Callable[[str], None] = lambda msg: tqdm.write(msg, file=sys.stderr)  # noqa: E731
    else:
        line_log = log
    trainer.add_callback(CheckpointCallback(run_dir / CHECKPOINTS, plan.train.save_total_limit))
    trainer.add_callback(MetricsCallback(lambda: trainer, run_dir / METRICS_FILE, line_log, True,
                                         result.history, result.step_times))
    if plan.train.early_stop is not None:
        trainer.add_callback(EarlyStoppingCallback(
            early_stopping_patience=plan.train.early_stop.patience,
            early_stopping_threshold=plan.train.early_stop.min_delta,
        ))
    for cb in callbacks:
        trainer.add_callback(cb)
    return trainer, result


def _finished(checkpoint: Path) -> bool:
    """True when the checkpoint was written at the run's final step."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    max_steps = state.get("max_steps") or 0
    return max_steps > 0 and int(state.get("global_step", 0)) >= int(max_steps)


def train(ctx: RunContext, *, resume: bool | str | Path = False, callbacks: Sequence[Any] = (),
          tty: bool | None = None) -> TrainResult:
    """Train `ctx.model` on `ctx.data` per the plan; resume=True continues from the newest complete
    checkpoint, a path from that checkpoint.

    Raises NonFiniteLoss (see faults.py) on a NaN/inf loss; OOM and KeyboardInterrupt propagate for
    the caller (backend/run.py) to report. Checkpoints written before a fault stay resumable.
    """
    plan, log = ctx.plan, ctx.log
    run_dir = Path(ctx.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    root = run_dir / CHECKPOINTS
    main_rank = int(os.environ.get("RANK", "0")) == 0
    resume_from: Path | None = None
    if resume:
        resume_from = Path(resume) if not isinstance(resume, bool) else None
        if resume_from is None:
            if main_rank:  # one process deletes; the others only skip incomplete ones
                ckpt.discard_incomplete(root)
            resume_from = ckpt.latest_complete(root)
    prior: list[dict] = []
    if resume and main_rank:
        # rows a killed run logged after its last complete checkpoint are replayed by the resume
        prior = _truncate_metrics(run_dir / METRICS_FILE, ckpt.checkpoint_step(resume_from) or 0
                                  if resume_from is not None else 0)
        if resume_from is not None:
            log(f"resuming from {resume_from.name}")
        else:
            log("resuming: no complete checkpoint yet, starting from step 0")
    elif main_rank:
        (run_dir / METRICS_FILE).unlink(missing_ok=True)
    trainer, result = build_trainer(ctx, callbacks=callbacks, tty=tty)
    result.history.extend(prior)
    result.resumed_from = resume_from
    t0 = time.perf_counter()
    if resume_from is not None and _finished(resume_from):
        # killed after its last step: Trainer would run one more step, so load the end state instead
        from transformers import TrainerState

        trainer._load_from_checkpoint(str(resume_from))
        trainer.state = TrainerState.load_from_json(str(resume_from / "trainer_state.json"))
        if trainer.args.load_best_model_at_end and trainer.state.best_model_checkpoint:
            trainer._load_best_model()  # what train() does at its end
    else:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if plan.eval.every == "end" and trainer.eval_dataset is not None and plan.train.early_stop is None:
        trainer.evaluate()
    result.train_seconds = time.perf_counter() - t0
    result.global_step = trainer.state.global_step
    result.tokens = trainer.tokens_seen()
    result.tokens_per_s = result.tokens / result.train_seconds if result.train_seconds > 0 else None
    result.stopped_early = trainer.state.global_step < trainer.state.max_steps
    if result.tokens_per_s is not None and math.isfinite(result.tokens_per_s):
        result.tokens_per_s = round(result.tokens_per_s, 1)
    return result
