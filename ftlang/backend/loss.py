"""Chunked cross-entropy (`train { loss = chunked }`): the causal-LM loss without the whole b·s·V logits.

The model runs with `logits_to_keep` = no position (its LM head projects nothing) and returns the final
hidden states; the head and the fp32 cross-entropy then run over LOSS_CHUNKS slices of the sequence, each
under activation checkpointing, so neither the forward nor the backward keeps more than one slice's
logits. The sum over the chunks is the loss transformers computes (ForCausalLMLoss: labels shifted by
one, -100 ignored, summed then divided by the accumulated batch's label count, else the mean).
"""

from __future__ import annotations

from typing import Any

from ftlang.plan import LOSS_CHUNKS

IGNORE = -100


def _head_of(model: Any) -> Any:
    """The output projection (lm_head, wrapped by LoRA or modules_to_save when those train it)."""
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings (not a causal LM)")
    return head


def chunked_lm_loss(model: Any, inputs: dict, num_items_in_batch: Any = None, *, unwrapped: Any = None,
                    chunks: int = LOSS_CHUNKS) -> Any:
    """The causal-LM loss of `model` (PEFT-wrapped or not; `unwrapped` the module that owns the head when
    `model` is a DDP/accelerate wrapper) on one batch, summed chunk by chunk."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    labels = inputs["labels"]
    rest = {k: v for k, v in inputs.items() if k != "labels"}
    none = torch.zeros(0, dtype=torch.long, device=labels.device)  # the head projects no position here
    out = model(**rest, output_hidden_states=True, logits_to_keep=none, use_cache=False)
    hidden = out.hidden_states[-1][:, :-1, :]  # the final norm's output; position t predicts t + 1
    del out  # else its tuple keeps every layer's output alive through the loss (the estimator counts none)
    target = labels[:, 1:].to(hidden.device)
    owner = unwrapped if unwrapped is not None else model
    head = _head_of(owner)
    cap = getattr(getattr(owner, "config", None), "final_logit_softcapping", None)  # gemma2

    def part(h, y):
        logits = head(h).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE,
                               reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    width = -(-hidden.shape[1] // chunks) if hidden.shape[1] else 1
    for at in range(0, hidden.shape[1], width):
        h, y = hidden[:, at:at + width], target[:, at:at + width]
        total = total + (checkpoint(part, h, y, use_reentrant=False) if torch.is_grad_enabled() else part(h, y))
    if num_items_in_batch is not None:
        return total / num_items_in_batch
    return total / (target != IGNORE).sum().clamp(min=1)
