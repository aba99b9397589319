"""Metric functions: pure text/number metrics and the model passes that feed them.

Scales: every metric is a plain float; BLEU, ROUGE, exact match, accuracy and F1 are in [0, 1]
(sacrebleu's 0..100 BLEU is divided by 100) so gates read the same way for every metric.
Perplexity is exp of the mean token cross-entropy over all validation target tokens (token-weighted,
never a mean of batch means). torch is imported inside the functions that need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

LM_METRICS = frozenset({"loss", "perplexity"})
GENERATION_METRICS = frozenset({"bleu", "rouge_1", "rouge_2", "rouge_l", "exact_match"})
IGNORE_INDEX = -100


# ---------------------------------------------------------------------------- text metrics


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    if not predictions:
        return 0.0
    return sum(_norm(p) == _norm(r) for p, r in zip(predictions, references, strict=True)) / len(predictions)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, effective order so short answers are not zeroed), in [0, 1]."""
    from sacrebleu.metrics import BLEU

    if not predictions:
        return 0.0
    score = BLEU(effective_order=True).corpus_score(list(predictions), [list(references)])
    return float(score.score) / 100.0


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure over the rows (rouge-score)."""
    from rouge_score import rouge_scorer

    keys = {"rouge_1": "rouge1", "rouge_2": "rouge2", "rouge_l": "rougeL"}
    if not predictions:
        return dict.fromkeys(keys, 0.0)
    scorer = rouge_scorer.RougeScorer(list(keys.values()), use_stemmer=False)
    totals = dict.fromkeys(keys, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)
        for ours, theirs in keys.items():
            totals[ours] += scores[theirs].fmeasure
    return {k: v / len(predictions) for k, v in totals.items()}


def accuracy(predicted: Sequence[int], gold: Sequence[int]) -> float:
    if not gold:
        return 0.0
    return sum(int(p) == int(g) for p, g in zip(predicted, gold, strict=True)) / len(gold)


def macro_f1(predicted: Sequence[int], gold: Sequence[int], num_labels: int | None = None) -> float:
    """Macro F1 over the labels that occur in gold or predictions (or all num_labels)."""
    labels = set(range(num_labels)) if num_labels else set(map(int, gold)) | set(map(int, predicted))
    if not labels:
        return 0.0
    total = 0.0
    for label in labels:
        tp = sum(1 for p, g in zip(predicted, gold, strict=True) if p == label and g == label)
        fp = sum(1 for p, g in zip(predicted, gold, strict=True) if p == label and g != label)
        fn = sum(1 for p, g in zip(predicted, gold, strict=True) if p != label and g == label)
        denom = 2 * tp + fp + fn
        total += (2 * tp / denom) if denom else 0.0
    return total / len(labels)


def text_metrics(wanted: Iterable[str], predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    wanted = set(wanted)
    out: dict[str, float] = {}
    if "bleu" in wanted:
        out["bleu"] = bleu(predictions, references)
    if wanted & {"rouge_1", "rouge_2", "rouge_l"}:
        out.update({k: v for k, v in rouge(predictions, references).items() if k in wanted})
    if "exact_match" in wanted:
        out["exact_match"] = exact_match(predictions, references)
    return out


# ---------------------------------------------------------------------------- model passes


@dataclass
class TokenLoss:
    """Summed token cross-entropy and the number of target tokens it covers."""

    total: float = 0.0
    tokens: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.tokens if self.tokens else float("nan")

    @property
    def perplexity(self) -> float:
        mean = self.mean
        if math.isnan(mean):
            return float("nan")
        return math.exp(min(mean, 700.0))  # exp overflows past ~709; such a model is already useless


def _batches(rows: Iterable[Any], size: int) -> Iterable[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(dict(row))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _pad_lm(batch: list[dict], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(r["input_ids"]) for r in batch)
    ids, mask, labels = [], [], []
    for r in batch:
        n = len(r["input_ids"])
        row_labels = list(r["labels"]) if r.get("labels") is not None else list(r["input_ids"])
        am = list(r["attention_mask"]) if r.get("attention_mask") is not None else [1] * n
        ids.append(list(r["input_ids"]) + [pad_id] * (width - n))
        mask.append(am + [0] * (width - n))
        labels.append(row_labels + [IGNORE_INDEX] * (width - n))
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def model_device(model: Any) -> Any:
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def causal_lm_loss(model: Any, rows: Iterable[Any], pad_id: int = 0, batch_size: int = 8) -> TokenLoss:
    """Token-weighted cross-entropy of a causal LM over tokenized rows (input_ids, labels with -100)."""
    import torch
    import torch.nn.functional as F

    device = model_device(model)
    acc = TokenLoss()
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with torch.no_grad():
            for batch in _batches(rows, batch_size):
                if "position_ids" in batch[0]:  # packed bins (eval { packing }): 4D block-diagonal mask
                    from ftlang.data.packing import PackedCollator

                    t = {k: v.to(device) for k, v in PackedCollator(pad_id)(batch).items()}
                    logits = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"],
                                   position_ids=t["position_ids"]).logits
                else:
                    t = {k: v.to(device) for k, v in _pad_lm(batch, pad_id).items()}
                    logits = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).logits
                # the prompt-learning methods prepend virtual tokens: keep the positions of the real ones
                logits = logits[:, -t["labels"].shape[1]:, :]
                shift_logits = logits[:, :-1, :].float()
                shift_labels = t["labels"][:, 1:]
                ce = F.cross_entropy(
                    shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                    ignore_index=IGNORE_INDEX, reduction="sum",
                )
                acc.total += float(ce)
                acc.tokens += int((shift_labels != IGNORE_INDEX).sum())
    finally:
        if was_training:
            model.train()
    return acc


def classify_pass(model: Any, rows: Iterable[Any], pad_id: int = 0, batch_size: int = 16) -> tuple[float, list[int], list[int]]:
    """Mean cross-entropy per row, predicted and gold label indices of a sequence classifier."""
    import torch
    import torch.nn.functional as F

    device = model_device(model)
    total, count = 0.0, 0
    predicted: list[int] = []
    gold: list[int] = []
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with torch.no_grad():
            for batch in _batches(rows, batch_size):
                width = max(len(r["input_ids"]) for r in batch)
                ids = [list(r["input_ids"]) + [pad_id] * (width - len(r["input_ids"])) for r in batch]
                mask = [
                    (list(r["attention_mask"]) if r.get("attention_mask") is not None else [1] * len(r["input_ids"]))
                    + [0] * (width - len(r["input_ids"]))
                    for r in batch
                ]
                labels = torch.tensor([int(r["labels"] if "labels" in r else r["label"]) for r in batch], device=device)
                kwargs = {
                    "input_ids": torch.tensor(ids, dtype=torch.long, device=device),
                    "attention_mask": torch.tensor(mask, dtype=torch.long, device=device),
                }
                if "token_type_ids" in batch[0]:
                    kwargs["token_type_ids"] = torch.tensor(
                        [list(r["token_type_ids"]) + [0] * (width - len(r["token_type_ids"])) for r in batch],
                        dtype=torch.long, device=device,
                    )
                logits = model(**kwargs).logits.float()
                total += float(F.cross_entropy(logits, labels, reduction="sum"))
                count += len(batch)
                predicted.extend(int(i) for i in logits.argmax(-1).tolist())
                gold.extend(int(i) for i in labels.tolist())
    finally:
        if was_training:
            model.train()
    return (total / count if count else float("nan")), predicted, gold


# ---------------------------------------------------------------------------- generation


def split_chat(row: dict) -> tuple[list[dict], str] | None:
    """(prompt messages, reference) of a canonical row: the chat without its final assistant turn.

    Instruction rows (instruction/input/output) are read as one user turn; a row with no assistant
    answer has no reference and yields None.
    """
    messages = row.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "assistant":
            return [dict(m) for m in messages[:-1]], str(last.get("content") or "")
        return None
    if "instruction" in row and "output" in row:
        user = str(row["instruction"])
        if row.get("input"):
            user = f"{user}\n\n{row['input']}"
        return [{"role": "user", "content": user}], str(row["output"])
    return None


def render_prompt(tokenizer: Any, messages: list[dict]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # no template: a plain transcript, so a base model still gets a readable prompt
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "


def generate_texts(model: Any, tokenizer: Any, prompts: Sequence[str], generation: Any,
                   batch_size: int = 8) -> list[str]:
    """Greedy (or sampled, as declared) continuations of each prompt, decoded without specials.

    Prompts are generated in left-padded batches (the CPU cost of eval is mostly generation); a
    tokenizer without a pad or EOS token falls back to one prompt at a time.
    """
    import torch

    device = model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        batch_size = 1
    kwargs: dict[str, Any] = {
        "max_new_tokens": int(generation.max_new_tokens),
        "pad_token_id": pad_id,
        "do_sample": not generation.greedy,
    }
    if not generation.greedy:
        kwargs.update(temperature=float(generation.temperature), top_p=float(generation.top_p))
    if tokenizer.eos_token_id is not None:
        kwargs["eos_token_id"] = tokenizer.eos_token_id
    out: list[str] = []
    was_training = getattr(model, "training", False)
    old_side, old_pad = tokenizer.padding_side, tokenizer.pad_token
    model.eval()
    try:
        tokenizer.padding_side = "left"  # generation continues at the right end of every row
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                chunk = list(prompts[i:i + batch_size])
                enc = tokenizer(chunk, return_tensors="pt", add_special_tokens=False, padding=len(chunk) > 1)
                ids = model.generate(
                    input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device), **kwargs
                )
                width = enc["input_ids"].shape[1]
                out.extend(tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in ids)
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = None
        if was_training:
            model.train()
    return out
