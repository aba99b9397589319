"""Streamed sources (`hf_dataset(..., streaming = true)`): the train pipeline runs batch by batch while the
source is read, straight into tokenization, so the source's rows are never all in memory.

A streamed source streams when the train pipeline reads it with per-row steps only (filter, the
conversions, dedupe, which keeps one hash per distinct row, head(n), which counts) or append steps
(concat, mix: their rows follow the stream's, read whole) and no other dataset reads it; otherwise it
is read whole, and the log says why. Once a head(n) has let its n rows through, the rest of the stream
is not read (`"stopped_after"`: the rows read), so head bounds an endless stream. The validation split
of a stream is a hash split: a row is held
out when the hash of (seed, its content) falls inside the fraction, so the same data and seed hold out the
same rows, about (not exactly) that fraction of them; the split's stats say `"method": "hash"`. With
`split train { first = N }` it is the first N distinct rows the steps let through (and any later copy of
one), `"method": "first"`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from ftlang.data.rows import content_hash
from ftlang.data.steps import (
    APPEND_STEPS,
    CHUNK_ROWS,
    CONVERTED,
    PER_ROW_STEPS,
    Carried,
    Dataset,
    PipelineRunner,
    conserved,
    new_stats,
)
from ftlang.plan import Plan

BATCH_ROWS = CHUNK_ROWS  # rows per batch of a stream



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
    why = next((f"step {s.op}(...) needs all its rows" for s in pipe.steps
                if s.op not in PER_ROW_STEPS + APPEND_STEPS), None)
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
        self.stats: dict = {**new_stats(self.pipe), "streamed": True, "output": 0}
        self.split = self.plan.datasets.split
        self.validation: list[dict] = []
        self.train_rows = 0
        self._first: set[bytes] = set()  # split { first = N }: the held-out contents (16-byte hashes)

    def _held_out(self, row: dict) -> bool:
        sp = self.split
        assert sp is not None
        if sp.first is None:
            return _held_out(row, sp.validation or 0.0, sp.seed)
        h = bytes.fromhex(content_hash(row))[:16]  # a later copy of a held-out row is held out too
        if h not in self._first and len(self._first) < sp.first:
            self._first.add(h)
        return h in self._first

    def _split(self, ds: Dataset) -> list[dict]:
        """ds's train rows; the held-out ones join `validation`."""
        self.stats["output"] += len(ds.rows)
        train = ds.rows
        if self.split is not None:
            held = [self._held_out(r) for r in ds.rows]
            train = [r for r, h in zip(ds.rows, held, strict=True) if not h]
            self.validation += [r for r, h in zip(ds.rows, held, strict=True) if h]
        self.train_rows += len(train)
        return train

    def batches(self) -> Iterator[list[dict]]:
        carried = Carried.of(self.pipe.steps)
        src = self.plan.data[self.source.name]
        for batch in self.runner.source_chunks(self.source, self._rows, src, self.stats, "train",
                                               lambda: carried.full(self.pipe.steps), BATCH_ROWS):
            ds = Dataset("train", src.format, batch)
            self.runner.run_chunk(ds, self.pipe.steps, self.stats, carried)
            yield self._split(ds)
        for ds in self.runner.appended(self.pipe, self.stats, carried, stopped="stopped_after" in self.stats):
            yield self._split(ds)  # concat, mix

    def finish(self) -> dict:
        """After the stream (source_chunks applied the source's policy and kept its counts): the pipeline's
        counts; returns the split's."""
        s = self.source
        st = self.stats
        st["conservation"] = conserved(st)
        self.runner.datasets["train"] = Dataset("train", self.fmt, [], st)
        if self.split is None:
            return {}
        sp = self.split
        how = (f"the first {sp.first} rows" if sp.first else f"a hash split (about {sp.validation:.0%} of the rows, "
                                                              f"by content hash and seed {sp.seed})")
        self.log(f"data: train streams from `{s.name}`: its validation split is {how}: "
                 f"{len(self.validation)} of {st['output']} rows held out")
        return {"dataset": "train", "seed": sp.seed, "fraction": sp.validation,
                "method": "first" if sp.first else "hash", **({"first": sp.first} if sp.first else {}), "stream": True,
                "train": self.train_rows, "validation": len(self.validation), "augmented_copies_dropped": 0,
                "conservation": self.train_rows + len(self.validation) == st["output"]}
