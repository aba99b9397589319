"""`ftlang data stats`: a quality report of a recipe's datasets (after their steps).

Counts (read/kept/skipped/deduped/filtered/augmented/mixed), remaining duplicates (exact and
normalized), token-length percentiles (the model's tokenizer, or whitespace tokens when it cannot be
loaded), distinct-1/2 of the responses, instruction diversity, and the 1K-100K quantity guidance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ftlang.data.formats import to_chat
from ftlang.data.rows import content_hash, normalize_text, normalized_hash
from ftlang.data.steps import PipelineRunner
from ftlang.plan import Plan

MIN_ROWS, MAX_ROWS = 1_000, 100_000


def _prompt_and_response(row: dict, fmt: str) -> tuple[str, str]:
    if fmt == "instruction":
        return (row["instruction"] + (" " + row["input"] if row.get("input") else "")), row["output"]
    if fmt == "chat":
        users = [m["content"] for m in row["messages"] if m["role"] == "user"]
        bots = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        return " ".join(users), " ".join(bots)
    return "", row.get("text", "")


def distinct_n(texts: list[str], n: int) -> float:
    total, seen = 0, set()
    for t in texts:
        words = t.lower().split()
        grams = list(zip(*(words[i:] for i in range(n)), strict=False))
        total += len(grams)
        seen.update(grams)
    return round(len(seen) / total, 4) if total else 0.0


def percentiles(values: list[int]) -> dict:
    if not values:
        return {}
    v = sorted(values)

    def p(q: float) -> int:
        return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]

    return {"min": v[0], "p50": p(0.5), "p90": p(0.9), "p95": p(0.95), "p99": p(0.99), "max": v[-1],
            "mean": round(sum(v) / len(v), 1)}


def _lengths(rows: list[dict], fmt: str, tokenizer, plan: Plan) -> tuple[list[int], str]:
    if tokenizer is not None:
        try:
            if fmt in ("chat", "instruction"):
                from ftlang.data.templates import chat_renderer

                renderer = chat_renderer(plan.train.template, tokenizer)
                texts = [renderer.render(r["messages"] if fmt == "chat" else to_chat(r, fmt)["messages"])
                         for r in rows]
            else:
                texts = [r.get("text", "") for r in rows]
            enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
            return [len(x) for x in enc["input_ids"]], "tokenizer"
        except Exception:  # noqa: BLE001 - fall back to words, said in the report
            pass
    texts = [" ".join(_prompt_and_response(r, fmt)) for r in rows]
    return [len(t.split()) for t in texts], "whitespace"


def dataset_report(name: str, rows: list[dict], fmt: str, tokenizer, plan: Plan) -> dict:
    prompts, responses = zip(*(_prompt_and_response(r, fmt) for r in rows), strict=True) if rows else ((), ())
    exact = len(rows) - len({content_hash(r) for r in rows})
    normalized = len(rows) - len({normalized_hash(r) for r in rows})
    lengths, unit = _lengths(rows, fmt, tokenizer, plan)
    norm_prompts = [" ".join(normalize_text(p).split()) for p in prompts]
    first_words = Counter(p.split()[0] for p in norm_prompts if p.split())
    top = first_words.most_common(10)
    n = len(rows)
    guidance = ("ok: within the 1K-100K rows practice suggests" if MIN_ROWS <= n <= MAX_ROWS else
                f"under {MIN_ROWS:,} rows: fine-tunes this small overfit easily; add data or augment" if n < MIN_ROWS
                else f"over {MAX_ROWS:,} rows: returns diminish; dedupe, filter or sample")
    return {
        "name": name, "format": fmt, "rows": n,
        "augmented": sum(1 for r in rows if r.get("_meta", {}).get("augmented")),
        "mixed": sum(1 for r in rows if r.get("_meta", {}).get("mixed")),
        "duplicates": {"exact": exact, "normalized": normalized},
        "length": {"unit": unit, **percentiles(lengths)},
        "diversity": {"distinct_1": distinct_n(list(responses), 1), "distinct_2": distinct_n(list(responses), 2)},
        "instruction_diversity": {
            "unique_ratio": round(len(set(norm_prompts)) / n, 4) if n else 0.0,
            "distinct_2": distinct_n(list(prompts), 2),
            "top_first_words": top,
            "top_first_word_share": round(top[0][1] / n, 4) if top and n else 0.0,
        },
        "quantity": {"rows": n, "min": MIN_ROWS, "max": MAX_ROWS, "guidance": guidance},
    }


def data_report(plan: Plan, tokenizer=None, *, allow_outside: bool = False,
                log: Callable[[str], None] = lambda _m: None, tokenizer_note: str | None = None) -> dict:
    runner = PipelineRunner(plan, allow_outside=allow_outside, log=log)
    datasets = {}
    for name in plan.datasets.pipelines:
        ds = runner.run(name)
        datasets[name] = dataset_report(name, ds.rows, ds.fmt, tokenizer, plan)
    return {
        "recipe": plan.recipe.name,
        "sources": {n: runner.source_stats(n) for n in runner.sources},
        "pipelines": {n: d.stats for n, d in runner.datasets.items()},
        "datasets": datasets,
        "tokenizer": tokenizer_note or ("model tokenizer" if tokenizer is not None else "whitespace"),
        "warnings": [d.to_json() for d in runner.warnings],
    }
