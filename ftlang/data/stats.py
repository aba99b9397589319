"""`ftlang data stats`: a quality report of a recipe's datasets (after their steps).

Counts (read/kept/skipped/deduped/filtered/augmented/mixed), remaining duplicates (exact and
normalized), token-length percentiles (the model's tokenizer, or whitespace tokens when it cannot be
loaded), distinct-1/2 of the responses, instruction diversity, and the 1K-100K quantity guidance.
"""

from __future__ import annotations

import hashlib
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ftlang.data.rows import batched, content_hash, normalize_text, normalized_hash
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


#: distinct-n is computed over at most this many rows (evenly spaced through the dataset): its n-gram sets
#: grow with the text, and a ratio over 50K rows describes a dataset as well as one over all of it
DIVERSITY_ROWS = 50_000
BATCH_ROWS = 8192


def _lengths(rows: list[dict], fmt: str, tokenizer, renderer) -> list[int] | None:
    """Token lengths of the rows as training renders them; None when the tokenizer cannot (words then)."""
    try:
        if fmt in ("chat", "instruction"):
            from ftlang.data.tokenize import chat_texts

            texts = [t for t, _ in chat_texts(rows, fmt, renderer)]
        else:
            texts = [r.get("text", "") for r in rows]
        enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
        return [len(x) for x in enc["input_ids"]]
    except Exception:  # noqa: BLE001 - fall back to words, said in the report
        return None


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _distinct(rows) -> int:
    """Distinct rows by content hash: spilled rows carry theirs (RowWriter stored it), others are hashed."""
    from ftlang.data.rowtable import RowTable

    if isinstance(rows, RowTable):
        import numpy as np

        return len(np.unique(rows.hashes()))
    return len({content_hash(r) for r in rows})


def dataset_report(name: str, rows, fmt: str, tokenizer, plan: Plan | None) -> dict:
    """The report of one dataset, read batch by batch: memory holds 16-byte digests and lengths per row, and
    the n-grams of at most DIVERSITY_ROWS rows."""
    n = len(rows)
    every = max(1, -(-n // DIVERSITY_ROWS))  # distinct-n reads every `every`-th row
    normalized: set[bytes] = set()
    prompts_seen: set[bytes] = set()
    first_words: Counter = Counter()
    lengths = array("q")
    renderer = None
    if tokenizer is not None and fmt in ("chat", "instruction"):
        from ftlang.data.prepare import _renderer  # the renderer training uses (None: no chat template)

        renderer = _renderer(plan, tokenizer)
    usable = tokenizer is not None and (renderer is not None or fmt not in ("chat", "instruction"))
    unit = "tokenizer" if usable else "whitespace"
    switched = False  # the tokenizer failed after counting earlier batches: every row is counted in words
    sample_prompts: list[str] = []
    sample_responses: list[str] = []
    augmented = mixed = at = 0
    for batch in batched(rows, BATCH_ROWS):
        pairs = [_prompt_and_response(r, fmt) for r in batch]
        for k, (row, (prompt, response)) in enumerate(zip(batch, pairs, strict=True)):
            meta = row.get("_meta", {})
            augmented += bool(meta.get("augmented"))
            mixed += bool(meta.get("mixed"))
            normalized.add(bytes.fromhex(normalized_hash(row))[:16])
            norm = " ".join(normalize_text(prompt).split())
            prompts_seen.add(_digest(norm))
            if norm:
                first_words[norm.split(" ", 1)[0]] += 1
            if (at + k) % every == 0:
                sample_prompts.append(prompt)
                sample_responses.append(response)
        at += len(batch)
        counted = _lengths(batch, fmt, tokenizer, renderer) if unit == "tokenizer" else None
        if counted is None:
            switched = switched or (unit == "tokenizer" and at > len(batch))
            unit = "whitespace"
            counted = [len(f"{p} {r}".split()) for p, r in pairs]
        lengths.extend(counted)
    if switched:
        lengths = array("q", (len(" ".join(_prompt_and_response(r, fmt)).split()) for r in rows))
    top = first_words.most_common(10)
    guidance = ("ok: within the 1K-100K rows practice suggests" if MIN_ROWS <= n <= MAX_ROWS else
                f"under {MIN_ROWS:,} rows: fine-tunes this small overfit easily; add data or augment" if n < MIN_ROWS
                else f"over {MAX_ROWS:,} rows: returns diminish; dedupe, filter or sample")
    return {
        "name": name, "format": fmt, "rows": n,
        "augmented": augmented,
        "mixed": mixed,
        "duplicates": {"exact": n - _distinct(rows), "normalized": n - len(normalized)},
        "length": {"unit": unit, **percentiles(lengths)},
        "diversity": {"distinct_1": distinct_n(sample_responses, 1), "distinct_2": distinct_n(sample_responses, 2),
                      "rows": len(sample_responses)},
        "instruction_diversity": {
            "unique_ratio": round(len(prompts_seen) / n, 4) if n else 0.0,
            "distinct_2": distinct_n(sample_prompts, 2),
            "top_first_words": top,
            "top_first_word_share": round(top[0][1] / n, 4) if top and n else 0.0,
        },
        "quantity": {"rows": n, "min": MIN_ROWS, "max": MAX_ROWS, "guidance": guidance},
    }


def data_report(plan: Plan, tokenizer=None, *, allow_outside: bool = False,
                log: Callable[[str], None] = lambda _m: None, tokenizer_note: str | None = None) -> dict:
    """The report of every dataset; pipelines run as prepare runs them (chunk by chunk, rows spilled to a
    temporary folder), so a dataset larger than memory is reported too."""
    with tempfile.TemporaryDirectory(prefix="ftlang-stats-") as spill:
        runner = PipelineRunner(plan, allow_outside=allow_outside, log=log, release=True, spill=Path(spill))
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
