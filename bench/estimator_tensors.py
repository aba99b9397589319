"""The estimator's activation, logits and gradient terms against the tensors ftlang's runtime really allocates.

    python bench/estimator_tensors.py             # a Markdown table; CPU, about a minute

A small Llama (2 layers, hidden 256, vocab 32000; random weights from a config) runs one forward and
backward the way ftlang's backend does (transformers' loss, or backend/loss.py's chunked loss; PEFT LoRA
for the adapter rows) under a dispatch mode that tracks every tensor storage created and freed: the
peak of live bytes is what `torch.cuda.max_memory_allocated` would report for the step on a GPU, minus
the weights already there. The estimate is `estimate()`'s peak less the weights, the optimizer state
and the attention-mask term (no mask is passed: no padding). Torch is imported here, never by
`ftlang check`.
"""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 2**20
LAYERS, HIDDEN, HEADS, KV_HEADS, INTERMEDIATE, VOCAB = 2, 256, 4, 2, 688, 32000
BATCH, SEQ = 2, 512
ADAPTED = ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Case:
    precision: str  # bf16 (pure) or fp32
    method: str  # full or lora
    checkpointing: bool
    chunked: bool

    @property
    def label(self) -> str:
        return " · ".join([f"{self.method} {self.precision}" + (" pure" if self.precision == "bf16" else ""),
                           "checkpointing" if self.checkpointing else "no checkpointing",
                           "chunked loss" if self.chunked else "standard loss"])


def cases() -> list[Case]:
    return [Case(p, m, c, k) for m in ("full", "lora") for p in ("bf16", "fp32") for c in (False, True)
            for k in (False, True)]


def live_peak(case: Case) -> int:
    """Peak bytes of the tensors one forward + backward creates (the weights excluded)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftlang.backend.loss import chunked_lm_loss

    class LiveBytes(TorchDispatchMode):
        def __init__(self, old: set[int]) -> None:
            super().__init__()
            self.old, self.seen, self.live, self.peak = old, set(), 0, 0

        def _drop(self, key: int, n: int) -> None:
            self.live -= n
            self.seen.discard(key)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor):
                    continue
                st = t.untyped_storage()
                key, n = st.data_ptr(), st.nbytes()
                if n and key not in self.seen and key not in self.old:  # views of weights are no new memory
                    self.seen.add(key)
                    self.live += n
                    weakref.finalize(st, self._drop, key, n)
            self.peak = max(self.peak, self.live)
            return out

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, vocab_size=VOCAB,
                         max_position_embeddings=2 * SEQ, tie_word_embeddings=False, use_cache=False)
    dtype = torch.bfloat16 if case.precision == "bf16" else torch.float32
    model = LlamaForCausalLM(config).to(dtype)
    if case.checkpointing:  # what backend/methods.py asks of transformers
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if case.method == "lora":
        from peft import LoraConfig, get_peft_model

        if case.checkpointing:
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=ADAPTED, lora_dropout=0.0),
                               autocast_adapter_dtype=case.precision != "bf16")
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    old = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    mode = LiveBytes(old)
    with mode:
        batch = {"input_ids": ids, "labels": ids}
        loss = chunked_lm_loss(model, batch) if case.chunked else model(**batch)["loss"]
        loss.backward()
    return mode.peak


def estimated(case: Case) -> int:
    """The estimator's peak for the same step, less what the measurement leaves out."""
    from ftlang.plan import FullMethod, HardwarePlan, LoraMethod, TrainPlan
    from ftlang.semantic.cards import Card
    from ftlang.semantic.resources import estimate

    card = Card(name="bench", source=None, family="llama", hidden=HIDDEN, layers=LAYERS, heads=HEADS,
                kv_heads=KV_HEADS, intermediate=INTERMEDIATE, vocab=VOCAB)
    method = FullMethod() if case.method == "full" else LoraMethod(r=8, alpha=16, targets=ADAPTED)
    train = TrainPlan(precision=case.precision, pure_bf16=True if case.precision == "bf16" else None,
                      batch=BATCH, max_seq_len=SEQ, gradient_checkpointing=case.checkpointing,
                      loss="chunked" if case.chunked else None)
    mem = estimate(card, method, train, HardwarePlan(), seq=SEQ).memory
    return mem.peak_bytes - mem.weights_bytes - mem.optimizer_bytes - BATCH * SEQ * SEQ


def main() -> int:
    print("| step (Llama 2×256, vocab 32000, batch 2 × 512) | measured MiB | estimate MiB | estimate / measured |")
    print("|---|---:|---:|---:|")
    for case in cases():
        got, est = live_peak(case), estimated(case)
        print(f"| {case.label} | {got / MIB:.1f} | {est / MIB:.1f} | {est / got:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
