"""train { loss = chunked }: the chunked cross-entropy equals transformers' loss and its LoRA gradients,
a tiny run trains with it, the checker refuses it where it cannot apply, and the estimator counts it."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from backend_helpers import lm_data, tiny_plan  # noqa: E402

from ftlang.backend.context import RunContext  # noqa: E402
from ftlang.backend.load import load_tokenizer  # noqa: E402
from ftlang.backend.methods import load_for_training  # noqa: E402
from ftlang.backend.train import seed_everything, train  # noqa: E402
from ftlang.plan import LoraMethod  # noqa: E402

LORA = LoraMethod(r=4, alpha=8, dropout=0.0, targets=["q_proj", "v_proj", "lm_head"])


def _batch(tok, n: int = 3):
    data = lm_data(tok, n_train=n, n_val=0)
    rows = data.train
    rows[1] = {**rows[1], "labels": [-100] * 3 + list(rows[1]["labels"][3:])}  # a masked prompt
    return data.collator()(rows)


def _loss_and_grads(model, batch, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model, batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


@pytest.mark.parametrize("num_items", [None, 37])
def test_chunked_loss_and_lora_gradients_equal_the_standard(tiny_llama_dir, num_items):
    import torch

    from ftlang.backend.loss import chunked_lm_loss

    plan = tiny_plan(tiny_llama_dir, LORA, train={"loss": "chunked"})
    tok = load_tokenizer(plan)
    seed_everything(plan)
    model = load_for_training(plan)
    with torch.no_grad():  # LoRA's B starts at zero: give the adapter (and so its A gradients) a value
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    batch = _batch(tok)

    def standard(m, b):
        kw = {"num_items_in_batch": torch.tensor(num_items)} if num_items else {}
        return m(**b, **kw).loss

    ref, ref_grads = _loss_and_grads(model, batch, standard)
    for chunks in (8, 3, 1000):  # more chunks than positions: empty slices are skipped
        got, grads = _loss_and_grads(model, batch, lambda m, b, c=chunks: chunked_lm_loss(
            m, b, torch.tensor(num_items) if num_items else None, chunks=c))
        assert abs(got.item() - ref.item()) <= 1e-5, (chunks, got.item(), ref.item())
        assert grads.keys() == ref_grads.keys() and any("lm_head" in n for n in grads)
        for n, g in grads.items():
            assert torch.allclose(g, ref_grads[n], atol=1e-5, rtol=1e-5), n
        assert any(g.abs().sum() > 0 for g in grads.values())


def test_the_model_projects_no_logits_whole(tiny_llama_dir):
    """What chunked_lm_loss asks of the model: hidden states, and logits for no position."""
    import torch

    plan = tiny_plan(tiny_llama_dir, LORA)
    tok = load_tokenizer(plan)
    model = load_for_training(plan)
    batch = {k: v for k, v in _batch(tok).items() if k != "labels"}
    out = model(**batch, output_hidden_states=True, logits_to_keep=torch.zeros(0, dtype=torch.long))
    assert out.logits.shape[1] == 0 and out.hidden_states[-1].shape[:2] == batch["input_ids"].shape


def test_a_tiny_run_trains_with_the_chunked_loss(tiny_llama_dir, tmp_path, monkeypatch):
    import ftlang.backend.loss as loss_mod

    calls = []
    real = loss_mod.chunked_lm_loss
    monkeypatch.setattr(loss_mod, "chunked_lm_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    plan = tiny_plan(tiny_llama_dir, LORA, train={"max_steps": 6, "loss": "chunked", "grad_accum": 2})
    histories, val = {}, {}
    for which, p in (("chunked", plan), ("standard", plan.model_copy(update={
            "train": plan.train.model_copy(update={"loss": None})}))):
        tok = load_tokenizer(p)
        seed_everything(p)
        model = load_for_training(p)
        result = train(RunContext(plan=p, run_dir=tmp_path / which, model=model, tokenizer=tok, data=lm_data(tok),
                                  log=lambda s: None), tty=False)
        histories[which] = [r["loss"] for r in result.history if "loss" in r]
        val[which] = [r["val_loss"] for r in result.history if "val_loss" in r]
    chunked, standard = histories["chunked"], histories["standard"]
    assert len(calls) == 12 + 1  # 6 steps of 2 micro-batches and the final evaluation's batch
    assert len(val["chunked"]) == 1 and abs(val["chunked"][0] - val["standard"][0]) <= 1e-4
    assert len(chunked) == 6 and chunked[-1] < chunked[0]  # it learns
    assert all(abs(a - b) <= 1e-3 * max(1.0, abs(b)) for a, b in zip(chunked, standard, strict=True))


def test_estimator_counts_the_chunked_loss():
    from test_cards import CARDS

    from ftlang.plan import HardwarePlan, TrainPlan
    from ftlang.semantic.resources import estimate, runtime_of

    card = CARDS["llama2_7b"]
    method = LoraMethod(targets=["q_proj", "v_proj"])
    t = TrainPlan(batch=4, max_seq_len=2048, precision="bf16")
    chunked = t.model_copy(update={"loss": "chunked"})
    assert runtime_of(card, method, chunked, HardwarePlan()).chunked_loss
    assert not runtime_of(card, method, t, HardwarePlan()).chunked_loss
    a = estimate(card, method, t, HardwarePlan()).memory
    b = estimate(card, method, chunked, HardwarePlan()).memory
    assert b.logits_bytes < a.logits_bytes and b.peak_bytes < a.peak_bytes
