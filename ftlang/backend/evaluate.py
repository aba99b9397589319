"""Evaluate a model on a prepared validation set, and the two verdicts gates read.

- `evaluate_model(plan, model, tokenizer, prepared)`: metric name → float for `plan.eval.metrics`.
- `forgetting(base_ppl, tuned_ppl)`: the relative perplexity increase on the general set.
- `overfitting(history, patience)`: validation loss rose `patience` evaluations in a row while the
  training loss fell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ftlang.backend import metrics as M
from ftlang.plan import Plan


def _pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def perplexity_on(model: Any, tokenizer: Any, rows: Sequence[Any]) -> float:
    """Token-weighted perplexity of a causal LM over tokenized rows."""
    return M.causal_lm_loss(model, rows, pad_id=_pad_id(tokenizer)).perplexity


def _answered(rows: Sequence[dict], cap: int | None) -> list[tuple[list[dict], str]]:
    """(prompt messages, reference) of the rows that have an answer, the first `cap` of them."""
    out = []
    for row in rows:
        pair = M.split_chat(dict(row))
        if pair is None:
            continue
        out.append(pair)
        if cap is not None and len(out) >= cap:
            break
    return out


def generation_pairs(tokenizer: Any, rows: Sequence[dict], cap: int | None) -> tuple[list[str], list[str]]:
    """Prompts (chat template with a generation prompt) and references of the rows that have an answer."""
    pairs = _answered(rows, cap)
    return [M.render_prompt(tokenizer, p) for p, _ in pairs], [r for _, r in pairs]


SAMPLES = 4  # held-out prompts shown side by side in the report


def sample_answers(plan: Plan, model: Any, tokenizer: Any, prepared: Any, n: int = SAMPLES) -> list[dict]:
    """The first n held-out prompts (last user turn), the model's answer and the reference."""
    if plan.model.task.kind == "classify":
        return []
    pairs = _answered(list(getattr(prepared, "validation_rows", None) or []), n)
    if not pairs:
        return []
    answers = M.generate_texts(model, tokenizer, [M.render_prompt(tokenizer, p) for p, _ in pairs],
                               plan.eval.generation)
    return [{"prompt": p[-1]["content"] if p else "", "answer": a, "reference": r}
            for (p, r), a in zip(pairs, answers, strict=True)]


def evaluate_model(plan: Plan, model: Any, tokenizer: Any, prepared: Any,
                   wanted: Sequence[str] | None = None) -> dict[str, float]:
    """Every requested metric of `model` on `prepared.validation` (+ `validation_rows` for generation)."""
    wanted = list(wanted if wanted is not None else plan.eval.metrics)
    rows = list(getattr(prepared, "validation", None) or [])
    out: dict[str, float] = {}
    if not rows:
        return out
    if plan.model.task.kind == "classify":
        loss, predicted, gold = M.classify_pass(model, rows, pad_id=_pad_id(tokenizer))
        if "loss" in wanted:
            out["loss"] = loss
        if "accuracy" in wanted:
            out["accuracy"] = M.accuracy(predicted, gold)
        if "f1" in wanted:
            out["f1"] = M.macro_f1(predicted, gold, len(plan.model.task.labels) or None)
        return out
    if set(wanted) & M.LM_METRICS:
        tl = M.causal_lm_loss(model, rows, pad_id=_pad_id(tokenizer))
        if "loss" in wanted:
            out["loss"] = tl.mean
        if "perplexity" in wanted:
            out["perplexity"] = tl.perplexity
    gen = [m for m in wanted if m in M.GENERATION_METRICS]
    if gen:
        source_rows = list(getattr(prepared, "validation_rows", None) or [])
        prompts, refs = generation_pairs(tokenizer, source_rows, plan.eval.max_samples)
        if prompts:
            predictions = M.generate_texts(model, tokenizer, prompts, plan.eval.generation)
            out.update(M.text_metrics(gen, predictions, refs))
    return out


def forgetting(base_perplexity: float, tuned_perplexity: float) -> float:
    """Relative increase of perplexity on the general set: 0.1 = 10% worse than the base model."""
    if not base_perplexity or math.isnan(base_perplexity) or math.isnan(tuned_perplexity):
        return float("nan")
    return (tuned_perplexity - base_perplexity) / base_perplexity


def _train_loss_between(history: Sequence[dict], after: int, upto: int) -> float | None:
    """Mean training loss logged in (after, upto]; the last one before, when none falls inside."""
    window = [float(r["loss"]) for r in history if "loss" in r and after < r.get("step", 0) <= upto]
    if window:
        return sum(window) / len(window)
    before = [float(r["loss"]) for r in history if "loss" in r and r.get("step", 0) <= upto]
    return before[-1] if before else None


def overfitting(history: Sequence[dict], patience: int) -> bool:
    """True when val_loss rose for `patience` consecutive evaluations while the training loss fell."""
    evals = [r for r in history if r.get("val_loss") is not None]
    if len(evals) < patience + 1 or patience < 1:
        return False
    streak = 0
    prev_val: float | None = None
    prev_train: float | None = None
    prev_step = -1
    for row in evals:
        val = float(row["val_loss"])
        step = int(row.get("step", 0))
        train = _train_loss_between(history, prev_step, step)
        prev_step = step
        if prev_val is not None and prev_train is not None and train is not None:
            streak = streak + 1 if (val > prev_val and train < prev_train) else 0
            if streak >= patience:
                return True
        prev_val, prev_train = val, train
    return False
