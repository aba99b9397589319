"""Metrics: text metrics against hand-computed values, token-weighted perplexity, generation, verdicts."""

from __future__ import annotations

import math

import pytest

from ftlang.backend import metrics as M
from ftlang.backend.evaluate import evaluate_model, forgetting, overfitting
from ftlang.plan import EvalPlan, GenerationSpec


def test_exact_match_normalizes_case_and_space():
    assert M.exact_match(["Paris ", "rome"], ["paris", "Madrid"]) == 0.5


def test_bleu_is_one_for_identical_and_lower_for_different():
    assert M.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert M.bleu(["a dog ran"], ["the cat sat on the mat"]) < 0.2


def test_rouge_matches_hand_computation():
    r = M.rouge(["the cat sat"], ["the cat sat on"])
    assert r["rouge_1"] == pytest.approx(2 * 0.75 * 1.0 / 1.75)
    assert r["rouge_2"] == pytest.approx(0.8)
    assert set(r) == {"rouge_1", "rouge_2", "rouge_l"}


def test_accuracy_and_macro_f1():
    pred, gold = [0, 1, 1, 2], [0, 1, 2, 2]
    assert M.accuracy(pred, gold) == 0.75
    # label 0: f1 1; label 1: tp1 fp1 → 2/3; label 2: tp1 fn1 → 2/3
    assert M.macro_f1(pred, gold, 3) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_split_chat_drops_final_assistant_turn():
    prompt, ref = M.split_chat({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    assert prompt == [{"role": "user", "content": "hi"}] and ref == "yo"
    assert M.split_chat({"messages": [{"role": "user", "content": "hi"}]}) is None
    assert M.split_chat({"instruction": "q", "input": "ctx", "output": "a"}) == ([{"role": "user", "content": "q\n\nctx"}], "a")


def test_perplexity_is_token_weighted_not_mean_of_batches(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    short = {"input_ids": [5, 6, 7], "labels": [5, 6, 7]}
    long = {"input_ids": list(range(10, 40)), "labels": list(range(10, 40))}
    rows = [short, long]
    per_batch = [M.causal_lm_loss(model, [r], batch_size=1) for r in rows]
    together = M.causal_lm_loss(model, rows, batch_size=2)
    expected = (per_batch[0].total + per_batch[1].total) / (per_batch[0].tokens + per_batch[1].tokens)
    assert together.tokens == 2 + 29
    assert together.mean == pytest.approx(expected, rel=1e-5)
    batch_mean = (per_batch[0].mean + per_batch[1].mean) / 2
    assert not math.isclose(together.mean, batch_mean, rel_tol=1e-6)
    # cross-check one row against the model's own loss (HF mean over shifted labels)
    with torch.no_grad():
        hf = model(input_ids=torch.tensor([long["input_ids"]]), labels=torch.tensor([long["labels"]])).loss
    assert per_batch[1].mean == pytest.approx(float(hf), rel=1e-5)
    assert together.perplexity == pytest.approx(math.exp(together.mean))


def test_evaluate_model_lm_and_generation(tiny_llama_dir, project):
    from eval_support import chat_prepared, make_plan
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    plan = make_plan(project, eval_=EvalPlan(
        metrics=["loss", "perplexity", "bleu", "rouge_l", "exact_match"],
        generation=GenerationSpec(max_new_tokens=5), max_samples=2,
    ))
    prepared = chat_prepared(tok)
    out = evaluate_model(plan, model, tok, prepared)
    assert set(out) == {"loss", "perplexity", "bleu", "rouge_l", "exact_match"}
    assert out["perplexity"] == pytest.approx(math.exp(out["loss"]))
    assert out["perplexity"] > 1
    assert 0.0 <= out["rouge_l"] <= 1.0 and out["exact_match"] == 0.0  # random weights never answer exactly


def test_generation_is_greedy_and_bounded(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    prompt = M.render_prompt(tok, [{"role": "user", "content": "hello"}])
    assert prompt.endswith("<|im_start|>assistant\n")
    spec = GenerationSpec(max_new_tokens=4)
    a = M.generate_texts(model, tok, [prompt], spec)
    b = M.generate_texts(model, tok, [prompt], spec)
    assert a == b
    assert len(tok(a[0], add_special_tokens=False)["input_ids"]) <= 4 + 2  # decode/re-encode may merge differently


def test_classification_metrics(tiny_bert_dir, project):
    from eval_support import FakePrepared, make_plan
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir))
    texts = ["billing problem", "app crashes", "love the feature", "refund please"]
    rows = [dict(tok(t), labels=i % 3) for i, t in enumerate(texts)]
    plan = make_plan(project, task="classify", labels=["a", "b", "c"], model_dir="models/tiny-bert",
                     eval_=EvalPlan(metrics=["loss", "accuracy", "f1"]))
    out = evaluate_model(plan, model, tok, FakePrepared(validation=rows, validation_rows=[]))
    assert set(out) == {"loss", "accuracy", "f1"}
    assert 0 <= out["accuracy"] <= 1 and 0 <= out["f1"] <= 1 and out["loss"] > 0


def test_forgetting_is_relative_increase():
    assert forgetting(10.0, 12.0) == pytest.approx(0.2)
    assert forgetting(10.0, 9.0) == pytest.approx(-0.1)
    assert math.isnan(forgetting(0.0, 1.0))


def _hist(train, val):
    rows = []
    for i, (t, v) in enumerate(zip(train, val, strict=True)):
        rows.append({"step": (i + 1) * 10, "loss": t})
        rows.append({"step": (i + 1) * 10, "val_loss": v})
    return rows


def test_overfitting_needs_patience_rises_while_train_falls():
    assert overfitting(_hist([3, 2, 1.5, 1.0], [2.0, 2.1, 2.2, 2.3]), patience=2)
    assert not overfitting(_hist([3, 2, 1.5, 1.0], [2.0, 1.9, 2.0, 1.8]), patience=2)  # one rise only
    assert not overfitting(_hist([3, 3.1, 3.2, 3.3], [2.0, 2.1, 2.2, 2.3]), patience=2)  # train rose too
    assert not overfitting(_hist([3, 2], [2.0, 2.1]), patience=2)  # too few evaluations
    assert overfitting(_hist([3, 2], [2.0, 2.1]), patience=1)


def test_prompt_tuning_loss_skips_virtual_tokens_and_baseline_disables_it(tiny_llama_dir, project):
    from eval_support import chat_prepared, make_plan
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlang.backend.context import RunContext
    from ftlang.backend.finish import before_training
    from ftlang.plan import PromptMethod

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    prepared = chat_prepared(tok)
    plain = M.causal_lm_loss(base, prepared.validation)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)),
                           PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    tuned = M.causal_lm_loss(model, prepared.validation)
    assert tuned.tokens == plain.tokens  # the virtual tokens are never scored
    assert tuned.mean != pytest.approx(plain.mean)  # the soft prompt changes the predictions
    plan = make_plan(project, method=PromptMethod(virtual_tokens=4), eval_=EvalPlan(forgetting_on="general"))
    ctx = RunContext(plan=plan, run_dir=project / "run", model=model, tokenizer=tok, data=prepared)
    before_training(ctx)
    assert ctx.baseline_metrics["loss"] == pytest.approx(plain.mean, rel=1e-5)  # adapter disabled: the base
    assert ctx.baseline_metrics["forgetting_perplexity"] > 1


def test_baseline_includes_generation_metrics_only_when_affordable(tiny_llama_dir, project):
    from eval_support import chat_prepared, make_plan
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlang.backend.context import RunContext
    from ftlang.backend.finish import before_training

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    # (max_samples, validation rows multiplier, expected): over 64 generated rows the baseline skips generation
    for cap, times, expected in ((None, 40, {"perplexity"}), (2, 40, {"perplexity", "rouge_l"}),
                                 (None, 1, {"perplexity", "rouge_l"})):
        plan = make_plan(project, eval_=EvalPlan(metrics=["perplexity", "rouge_l"], max_samples=cap,
                                                 generation=GenerationSpec(max_new_tokens=3)))
        data = chat_prepared(tok, general=False)
        data.validation_rows = list(data.validation_rows) * times
        ctx = RunContext(plan=plan, run_dir=project / "run", model=model, tokenizer=tok, data=data)
        before_training(ctx)
        assert set(ctx.baseline_metrics) == expected and "baseline_eval" in ctx.timings


def test_batched_generation_matches_one_by_one(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    prompts = [M.render_prompt(tok, [{"role": "user", "content": q}])
               for q in ("hi", "What is the capital of France?", "billing refund invoice account login", "0 1 2")]
    spec = GenerationSpec(max_new_tokens=6)
    one = M.generate_texts(model, tok, prompts, spec, batch_size=1)
    batched = M.generate_texts(model, tok, prompts, spec, batch_size=4)
    assert batched == one and tok.padding_side == "right"
