"""Streamed sources (`hf_dataset(..., streaming = true)`): the train pipeline runs batch by batch while the
source is read, straight into tokenization, so the source's rows are never all in memory.

A streamed source streams when the train pipeline reads it with per-row steps only (filter, the
conversions, dedupe, which keeps one hash per distinct row) and no other dataset reads it; otherwise it
is read whole, and the log says why. The validation split of a stream is a hash split: a row is held
out when the hash of (seed, its content) falls inside the fraction, so the same data and seed hold out the
same rows, about (not exactly) that fraction of them; the split's stats say `"method": "hash"`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from itertools import islice

from ftlang.data.codes import row_problem
from ftlang.data.rows import content_hash, normalized_hash
from ftlang.data.steps import Dataset, PipelineRunner
from ftlang.data.validate import enforce
from ftlang.plan import Plan

STREAMING_STEPS = ("dedupe", "filter", "to_chat", "to_instruction", "to_completion")
CONVERTED = {"to_chat": "chat", "to_instruction": "instruction", "to_completion": "completion"}
BATCH_ROWS = 8192


def streamed_source(plan: Plan, log: Callable[[str], None]) -> str | None:
    """The streamed source the train pipeline reads batch by batch, or None (every source is read whole)."""
    pipes = plan.datasets.pipelines
    pipe = pipes["train"]
    name = pipe.source
    src = plan.data.get(name)
    if src is None or src.kind != "hf_dataset" or not src.hf_streaming:
        return None
    readers = [n for n, p in pipes.items() if n != "train" and (p.source == name or any(
        getattr(s.args, "other", None) == name for s in p.steps))]
    split = plan.datasets.split
    why = next((f"step {s.op}(...) needs all its rows" for s in pipe.steps if s.op not in STREAMING_STEPS), None)
    if why is None and readers:
        why = f"dataset `{readers[0]}` reads it too"
    elif why is None and plan.eval.forgetting_on == name:
        why = "eval's forgetting_on reads it too"
    elif why is None and split is not None and split.dataset != "train":
        why = f"the split holds out rows of `{split.dataset}`"
    if why is not None:
        log(f"data: source `{name}` is read whole, not streamed: {why}")
        return None
    return name


def _held_out(row: dict, fraction: float, seed: int) -> bool:
    rank = hashlib.sha256(f"{seed}:{content_hash(row)}".encode()).digest()
    return int.from_bytes(rank[:8], "big") < fraction * 2**64


class TrainStream:
    """The train pipeline over a streamed source: `batches()` yields its train rows batch by batch (the held-out
    rows collect in `validation`); `finish()` then records the counts, as PipelineRunner.run would."""

    def __init__(self, runner: PipelineRunner, name: str, log: Callable[[str], None]):
        from ftlang.data.hf import open_hf_rows  # imports `datasets`: run time only

        self.runner, self.plan, self.log = runner, runner.plan, log
        self.pipe = self.plan.datasets.pipelines["train"]
        src = self.plan.data[name]
        self.source, self._rows = open_hf_rows(self.plan, src)
        runner.sources[name] = self.source
        self.fmt = src.format
        for step in self.pipe.steps:
            self.fmt = CONVERTED.get(step.op, self.fmt)
        self.stats: dict = {"source": name, "streamed": True, "input": 0, "deduped": 0, "filtered": 0,
                            "augmented": 0, "mixed": 0, "sampled_out": 0, "output": 0,
                            "steps": [{"op": s.op, "rows_in": 0, "rows_out": 0} for s in self.pipe.steps]}
        self.split = self.plan.datasets.split
        self.validation: list[dict] = []
        self.train_rows = 0

    def batches(self) -> Iterator[list[dict]]:
        seen: list[set[bytes]] = [set() for _ in self.pipe.steps]
        strict = self.plan.data[self.stats["source"]].on_error
        early = strict.mode == "fail" or strict.max_rows is not None  # a fraction needs the whole count
        while batch := list(islice(self._rows, BATCH_ROWS)):
            if early and self.source.problems:
                enforce(self.plan, self.source)  # fail fast: raises once the policy is broken
            self.stats["input"] += len(batch)
            ds = Dataset("train", self.plan.data[self.stats["source"]].format, batch)
            for k, step in enumerate(self.pipe.steps):
                before = len(ds.rows)
                if step.op == "dedupe":  # across batches: one hash per distinct row so far
                    key = normalized_hash if step.args.mode == "normalized" else content_hash
                    kept = []
                    for row in ds.rows:
                        h = bytes.fromhex(key(row))[:16]
                        if h not in seen[k]:
                            seen[k].add(h)
                            kept.append(row)
                    self.stats["deduped"] += before - len(kept)
                    ds.rows = kept
                else:
                    self.runner._step(ds, step, self.stats)
                self.stats["steps"][k]["rows_in"] += before
                self.stats["steps"][k]["rows_out"] += len(ds.rows)
            self.stats["output"] += len(ds.rows)
            train = ds.rows
            if self.split is not None:
                held = [_held_out(r, self.split.validation, self.split.seed) for r in ds.rows]
                train = [r for r, h in zip(ds.rows, held, strict=True) if not h]
                self.validation += [r for r, h in zip(ds.rows, held, strict=True) if h]
            self.train_rows += len(train)
            yield train

    def finish(self) -> dict:
        """After the stream: the source's policy and emptiness, the pipeline's counts; returns the split's."""
        s = self.source
        if s.read == 0:
            s.fatal = row_problem("FT609", "the dataset split is empty: no rows", s.display, 1,
                                  loc=self.plan.data[s.name].loc, source=s.name)
        self.runner.warnings.extend(enforce(self.plan, s))
        self.runner.released[s.name] = s.read - len(s.problems)  # its rows went by; the count stays
        st = self.stats
        st["conservation"] = st["input"] == st["output"] + st["deduped"] + st["filtered"]
        self.runner.datasets["train"] = Dataset("train", self.fmt, [], st)
        if self.split is None:
            return {}
        sp = self.split
        self.log(f"data: train streams from `{s.name}`: its validation split is a hash split (about "
                 f"{sp.validation:.0%} of the rows, by content hash and seed {sp.seed}): "
                 f"{len(self.validation)} of {st['output']} rows held out")
        return {"dataset": "train", "seed": sp.seed, "fraction": sp.validation, "method": "hash", "stream": True,
                "train": self.train_rows, "validation": len(self.validation), "augmented_copies_dropped": 0,
                "conservation": self.train_rows + len(self.validation) == st["output"]}
