"""The data stage at scale, one measurement per fresh process (so each peak RSS is its own).

    python bench/data_scale.py ours|baseline|mix|mix-list WORK ROWS

ours      prepare() of `dataset train = d | dedupe(exact) | to_chat`, split 10%, data_workers = 2, then the
          cached rerun in the same process
mix       the same with a replay buffer: `| mix(replay, ratio = 5%)` (2,000 chat rows, written on first use)
mix-list  mix with the whole-list pipeline (PipelineRunner._chunked off): how it ran before mix went chunk
          by chunk
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


def _replay(work: Path) -> None:
    path = work / "data" / "replay.jsonl"
    if not path.is_file():
        rows = [{"messages": [{"role": "user", "content": f"An earlier question, number {i}?"},
                              {"role": "assistant", "content": f"The earlier answer, number {i}."}]} for i in range(2000)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def ours(work: Path, rows: int, mix: bool = False, chunked: bool = True) -> dict:
    from plan_factory import make_plan, source, step
    from transformers import AutoTokenizer

    from ftlang.data.prepare import prepare
    from ftlang.data.steps import PipelineRunner

    tok = AutoTokenizer.from_pretrained(str(work / "tok"))
    steps = [step("dedupe", mode="exact"), step("to_chat")]
    data = {"d": {"path": f"data/d{rows}.jsonl"}}
    if mix:
        _replay(work)
        steps.append(step("mix", other="replay", ratio=0.05, seed=0))
        data["replay"] = source("replay", "data/replay.jsonl", format="chat")
    if not chunked:
        PipelineRunner._chunked = lambda self, pipe: False
    plan = make_plan(work, data=data, pipelines={"train": ("d", steps)},
                     train={"max_seq_len": 2048, "data_workers": 2})
    cache = work / f"cache{rows}{'-mix' if mix else ''}{'' if chunked else '-list'}"
    if cache.exists():
        import shutil

        shutil.rmtree(cache)
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
    runs = {"ours": lambda: ours(work, n), "baseline": lambda: baseline(work, n),
            "mix": lambda: ours(work, n, mix=True), "mix-list": lambda: ours(work, n, mix=True, chunked=False)}
    got = runs[kind]()
    print(json.dumps({"kind": kind, "rows": n, "rows_s": n / got["seconds"], **got}))
