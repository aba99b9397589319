"""The data stage at scale, one measurement per fresh process (so each peak RSS is its own).

    python bench/data_scale.py ours|baseline WORK ROWS

ours      prepare() of `dataset train = d | dedupe(exact) | to_chat`, split 10%, data_workers = 2, then the
          cached rerun in the same process
baseline  the plain way: datasets.load_dataset("json") then Dataset.map(batched=True) with the same fast
          tokenizer and chat template (text + prompt rendered by apply_chat_template, labels masked up to the
          prompt's length), one process
Prints one JSON line: seconds, rows/s, RSS before the stage and its peak (VmHWM), the largest worker's.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def _status(key: str) -> int:
    """A /proc/self/status field in bytes (VmRSS: now, VmHWM: the peak so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def ours(work: Path, rows: int) -> dict:
    from plan_factory import make_plan, step
    from transformers import AutoTokenizer

    from ftlang.data.prepare import prepare

    tok = AutoTokenizer.from_pretrained(str(work / "tok"))
    plan = make_plan(work, data={"d": {"path": f"data/d{rows}.jsonl"}},
                     pipelines={"train": ("d", [step("dedupe", mode="exact"), step("to_chat")])},
                     train={"max_seq_len": 2048, "data_workers": 2})
    cache = work / f"cache{rows}"
    before = _status("VmRSS")
    t = time.perf_counter()
    p = prepare(plan, tok, cache_dir=cache, log=lambda _m: None)
    seconds = time.perf_counter() - t
    peak = _status("VmHWM")
    t = time.perf_counter()
    hit = prepare(plan, tok, cache_dir=cache, log=lambda _m: None)
    cached = time.perf_counter() - t
    assert hit.cache_hit and len(hit.train) == len(p.train) and p.stats["conservation"]
    return {"seconds": seconds, "cached_s": cached, "rss_before": before, "rss_peak": peak,
            "worker_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "train_rows": len(p.train), "tokens": p.stats["tokens"]["train"]["tokens"],
            "deduped": p.stats["pipelines"]["train"]["deduped"]}


def baseline(work: Path, rows: int) -> dict:
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    tok = AutoTokenizer.from_pretrained(str(work / "tok"))

    def batch(b):
        convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                 for q, a in zip(b["instruction"], b["output"], strict=True)]
        texts = tok.apply_chat_template(convs, tokenize=False)
        prompts = tok.apply_chat_template([c[:1] for c in convs], tokenize=False, add_generation_prompt=True)
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        lens = [len(p) for p in tok(prompts, add_special_tokens=False)["input_ids"]]
        return {"input_ids": ids, "labels": [[-100] * n + x[n:] for n, x in zip(lens, ids, strict=True)],
                "attention_mask": [[1] * len(x) for x in ids]}

    before = _status("VmRSS")
    t = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=str(work / "data" / f"d{rows}.jsonl"), split="train",
                               cache_dir=str(work / f"hf{rows}"))
    out = ds.map(batch, batched=True, batch_size=1000, remove_columns=ds.column_names)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rss_before": before, "rss_peak": _status("VmHWM"), "train_rows": len(out)}


if __name__ == "__main__":
    kind, work, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    got = (ours if kind == "ours" else baseline)(work, n)
    print(json.dumps({"kind": kind, "rows": n, "rows_s": n / got["seconds"], **got}))
