"""Dataset pipelines: sources → `| step(...)` chains → rows, with the counts of what each step did.

Rows are canonical dicts (see formats.py) plus "_meta": {"source", "line", "augmented"?, "mixed"?,
"origin"?}. Nothing is dropped without a count: every pipeline's stats balance (`conservation`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlang import plan as P
from ftlang.data.codes import row_problem
from ftlang.data.formats import RowError, to_chat, to_completion, to_instruction
from ftlang.data.rows import SourceRows, batched, content_hash, normalized_hash, public
from ftlang.data.validate import enforce, load_source, mark_empty, open_source
from ftlang.diagnostics import Diagnostic, DiagnosticError, error
from ftlang.expr import ExprError, evaluate, truthy
from ftlang.plan import CONVERTED, Plan, StepPlan, make_step
from ftlang.source import loc_span


@dataclass
class Dataset:
    name: str
    fmt: str
    rows: list[dict]
    stats: dict = field(default_factory=dict)


@dataclass
class PipelineRunner:
    """Runs a plan's pipelines, loading each source once and enforcing its on_error policy."""

    plan: Plan
    allow_outside: bool = False
    log: Callable[[str], None] = print
    sources: dict[str, SourceRows] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    models: dict = field(default_factory=dict)  # augmentation models, loaded once
    released: dict[str, int] = field(default_factory=dict)  # source → rows kept, once its rows are let go
    #: let a source's rows go after its last reader took them (prepare): a source and the rows its steps
    #: made from it are not both held. A read the count missed reloads the source: slower, never wrong
    release: bool = False
    #: a directory for spilled rows (prepare: inside the cache entry being written). With it, a pipeline of
    #: per-row steps over a source only it reads runs chunk by chunk into a RowTable (rowtable.py)
    spill: Path | None = None
    #: keep the first `taps` rows of each pipeline's source and after each of its steps (ftlang data
    #: preview): tapped[pipeline][k] holds them, k = 0 the source's, k = i + 1 those after step i
    taps: int = 0
    tapped: dict[str, dict[int, list[dict]]] = field(default_factory=dict)
    _readers: dict[str, int] | None = None

    # ------------------------------------------------------------------ sources
    def source(self, name: str) -> SourceRows:
        if name not in self.sources:
            rows = load_source(self.plan, name, allow_outside=self.allow_outside)
            self.warnings.extend(enforce(self.plan, rows))
            self.sources[name] = rows
        elif name in self.released and self.released[name] and not self.sources[name].rows:
            self.sources[name].rows = load_source(self.plan, name, allow_outside=self.allow_outside).rows
        return self.sources[name]

    def _took(self, name: str) -> None:
        """One reader of source `name` has its rows; after the last, the source lets them go."""
        if not self.release:
            return
        if self._readers is None:
            self._readers = source_readers(self.plan)
        self._readers[name] = self._readers.get(name, 1) - 1
        if self._readers[name] <= 0:
            s = self.sources[name]
            self.released[name] = len(s.rows)
            s.rows = []

    def source_stats(self, name: str) -> dict:
        s = self.sources[name]
        kept = self.released.get(name, len(s.rows))
        return {"read": s.read, "kept": kept, "skipped": len(s.problems), "fingerprint": s.fingerprint,
                "conservation": s.read == kept + len(s.problems)}

    def release_rows(self) -> None:
        """Let go of the sources' rows once every dataset is built (their counts stay for the stats), so
        a source and its converted rows are not both held while the data is tokenized."""
        for name, s in self.sources.items():
            self.released.setdefault(name, len(s.rows))
            s.rows = []

    def display(self, row: dict) -> tuple[str, int]:
        meta = row.get("_meta", {})
        src = self.sources.get(meta.get("source", ""))
        return (src.display if src else meta.get("source", "?")), int(meta.get("line", 1))

    def row_error(self, code: str, message: str, row: dict) -> DiagnosticError:
        path, line = self.display(row)
        name = row.get("_meta", {}).get("source", "")
        src = self.plan.data.get(name)
        return DiagnosticError(row_problem(code, message, path, line, loc=src.loc if src else None, source=name))

    # ------------------------------------------------------------------ datasets
    def resolve(self, name: str, user: StepPlan | None = None) -> Dataset:
        """A dataset by name: a pipeline's output, or a source's rows as they are."""
        if name in self.datasets:
            return self.datasets[name]
        pipes = self.plan.datasets.pipelines
        if name in pipes:
            return self.run(name)
        if name in self.plan.data:
            src = self.source(name)
            ds = Dataset(name, self.plan.data[name].format, list(src.rows))
            self._took(name)
            return ds
        raise DiagnosticError(error("FT624", f"no data source or dataset named {name!r}",
                                    loc_span(user.loc) if user else None))

    def run(self, name: str) -> Dataset:
        if name in self.datasets:
            return self.datasets[name]
        pipe = self.plan.datasets.pipelines[name]
        if self._chunked(pipe):
            return self._run_chunked(pipe)
        self.datasets[name] = Dataset(name, "pending", [])  # a cycle meets this empty placeholder
        base = self.resolve(pipe.source)
        ds = Dataset(name, base.fmt, list(base.rows))  # steps never change a row in place: no copies
        stats = new_stats(pipe)
        stats["input"] = len(ds.rows)
        self._tap(name, 0, ds.rows)
        for k, step in enumerate(pipe.steps):
            before = len(ds.rows)
            self._step(ds, step, stats)
            stats["steps"][k].update(rows_in=before, rows_out=len(ds.rows))
            self._tap(name, k + 1, ds.rows)
        return self._finish(ds, stats)

    def _tap(self, name: str, k: int, rows) -> None:
        """Keep the first `taps` rows at point k of pipeline `name` (rows arrive in order, chunk after chunk)."""
        if self.taps:
            kept = self.tapped.setdefault(name, {}).setdefault(k, [])
            if len(kept) < self.taps:
                kept += [dict(r) for r in rows[: self.taps - len(kept)]]

    def _step(self, ds: Dataset, step: StepPlan, stats: dict) -> None:
        STEP_RUNNERS[type(step)](self, ds, step, stats)

    # ------------------------------------------------------------------ chunk by chunk
    def _chunked(self, pipe: P.PipelinePlan) -> bool:
        """Whether the pipeline runs chunk by chunk: spilling is on, it reads a source no other reader
        takes, not yet loaded, with per-row steps only."""
        if self.spill is None or pipe.source not in self.plan.data or pipe.source in self.sources:
            return False
        if self._readers is None:
            self._readers = source_readers(self.plan)
        return (self._readers.get(pipe.source, 0) == 1
                and all(s.op in PER_ROW_STEPS + APPEND_STEPS + BARRIER_STEPS for s in pipe.steps))

    def run_chunk(self, ds: Dataset, steps: list[StepPlan], stats: dict, carried: Carried, start: int = 0,
                  end: int | None = None) -> None:
        """Steps start..end over one chunk of a pipeline's rows; `carried` holds what the steps remember between
        chunks, so a row equal to one of an earlier chunk is deduped too and head(n) counts every chunk.
        An append step lets the chunk by (its rows come after the last chunk: `appended`)."""
        for k in range(start, len(steps) if end is None else end):
            step = steps[k]
            before = len(ds.rows)
            if step.op in APPEND_STEPS:
                pass
            elif step.op == "dedupe":
                _dedupe(self, ds, step, stats, carried.seen[k])
            elif step.op == "head":
                _head(self, ds, step, stats, carried.passed[k])
            else:
                self._step(ds, step, stats)
            carried.passed[k] += len(ds.rows)
            stats["steps"][k]["rows_in"] += before
            stats["steps"][k]["rows_out"] += len(ds.rows)
            self._tap(ds.name, k + 1, ds.rows)

    def _run_chunked(self, pipe: P.PipelinePlan) -> Dataset:
        """The pipeline chunk by chunk, in segments that end at a sample(...): each segment's rows are spilled,
        the sample picks among them by index, and the next segment reads the picked rows back."""
        from ftlang.data.rowtable import RowWriter  # pyarrow: run time only

        assert self.spill is not None
        self.datasets[pipe.name] = Dataset(pipe.name, "pending", [])  # a cycle meets this empty placeholder
        s, rows = open_source(self.plan, pipe.source, allow_outside=self.allow_outside)
        self.sources[pipe.source] = s
        src = self.plan.data[pipe.source]
        stats = new_stats(pipe)
        carried = Carried.of(pipe.steps)
        ends = [k for k, step in enumerate(pipe.steps) if step.op in BARRIER_STEPS] + [len(pipe.steps)]
        # a stream ends its read once a head(n) before the first sample is full (a file is read to its end,
        # so the source's counts are whole)
        streamed = src.kind == "hf_dataset" and src.hf_streaming
        full = (lambda: carried.full(pipe.steps[:ends[0]])) if streamed else (lambda: False)
        chunks: Iterator[list[dict]] = self.source_chunks(s, rows, src, stats, pipe.name, full)
        start, fmt = 0, src.format
        for n, end in enumerate(ends):
            last = end == len(pipe.steps)
            writer = RowWriter(self.spill / f"{pipe.name}{'' if last else f'.{n}'}.arrow")
            for chunk in chunks:
                if start == 0:
                    self._tap(pipe.name, 0, chunk)
                ds = Dataset(pipe.name, fmt, chunk)
                self.run_chunk(ds, pipe.steps, stats, carried, start, end)
                writer.write(ds.rows)
            for ds in self.appended(pipe, stats, carried, stopped="stopped_after" in stats, start=start, end=end):
                writer.write(ds.rows)
            table = writer.close()
            for step in pipe.steps[start:end]:  # the format the steps give, even when no chunk went through
                fmt = CONVERTED.get(step.op, fmt)
            if last:
                break
            table = self._sampled(table, pipe.steps[end], stats, carried, end)
            self._tap(pipe.name, end + 1, table)
            chunks = batched(table, CHUNK_ROWS)
            start = end + 1
        return self._finish(Dataset(pipe.name, fmt, table), stats)

    def source_chunks(self, s: SourceRows, rows: Iterator[dict], src: P.SourcePlan, stats: dict, name: str,
                      full: Callable[[], bool], size: int | None = None) -> Iterator[list[dict]]:
        """The source's rows, `size` (CHUNK_ROWS) at a time, under its on_error policy, until `full()` says
        no later row could come out of pipeline `name`; the source's counts and policy once it ends."""
        from itertools import islice

        early = src.on_error.mode == "fail" or src.on_error.max_rows is not None  # a fraction needs the count
        while s.fatal is None:
            if full():
                stats["stopped_after"] = s.read
                self.log(f"data: head(...) of the {name} pipeline is full after {s.read} rows of `{s.name}`: "
                         "the rest of the stream is not read")
                break
            if not (chunk := list(islice(rows, size or CHUNK_ROWS))):
                break
            if early and s.problems:
                enforce(self.plan, s)  # fail fast, before the steps see a chunk the policy rejects
            stats["input"] += len(chunk)
            yield chunk
        mark_empty(self.plan, s)
        self.warnings.extend(enforce(self.plan, s))
        self.released[s.name] = s.read - len(s.problems)  # its rows went by; the count stays

    @staticmethod
    def _sampled(table: Any, step: StepPlan, stats: dict, carried: Carried, k: int) -> Any:
        """sample(n, seed) over spilled rows: the same positions `_sample` picks from a list."""
        import numpy as np

        before = len(table)
        keep = sample_positions(before, step)
        if keep is not None:
            table = table.select(np.asarray(keep, dtype=np.int64))
            stats["sampled_out"] += before - len(table)
        stats["steps"][k]["rows_in"] += before
        stats["steps"][k]["rows_out"] += len(table)
        carried.passed[k] += len(table)
        return table

    def appended(self, pipe: P.PipelinePlan, stats: dict, carried: Carried, stopped: bool = False,
                 start: int = 0, end: int | None = None) -> Iterator[Dataset]:
        """Once the chunks of steps start..end went through: each append step's rows among them (after every
        row that reached it), through the steps after it up to `end`, chunk by chunk. `stopped`: the source
        was not read to its end because a head(n) was full; an append step before a full head then adds
        nothing (no row of it could pass)."""

        end = len(pipe.steps) if end is None else end
        fmt = self.plan.data[pipe.source].format
        for k, step in enumerate(pipe.steps[:end]):
            if k >= start and step.op in APPEND_STEPS and not (
                    stopped and carried.full(pipe.steps[k + 1:], offset=k + 1)):
                if step.op == "mix":  # sized by the rows that reached it
                    added = self.mixed_rows(carried.passed[k], fmt, step, stats)
                else:
                    added = self.concatenated_rows(fmt, step, stats)
                stats["steps"][k]["rows_out"] += len(added)
                carried.passed[k] += len(added)
                self._tap(pipe.name, k + 1, added)
                for chunk in batched(added, CHUNK_ROWS):
                    ds = Dataset(pipe.name, fmt, chunk)
                    self.run_chunk(ds, pipe.steps, stats, carried, start=k + 1, end=end)
                    yield ds
            fmt = CONVERTED.get(step.op, fmt)

    def _finish(self, ds: Dataset, stats: dict) -> Dataset:
        stats["output"] = len(ds.rows)
        stats["conservation"] = conserved(stats)
        ds.stats = stats
        self.datasets[ds.name] = ds
        return ds

    def _convert(self, ds: Dataset, step: StepPlan) -> None:
        op = step.op
        render = None
        if op == "to_completion":
            from ftlang.data.templates import field_template

            render = field_template(step.args.template, ds.fmt, loc_span(step.loc))
        out = []
        for row in ds.rows:
            try:
                if op == "to_chat":
                    new = to_chat(row, ds.fmt, step.args.system)
                elif op == "to_instruction":
                    new = to_instruction(row, ds.fmt)
                else:
                    new = to_completion(row, ds.fmt, render)
            except RowError as e:
                raise self.row_error(e.code, e.message, row) from None
            if "_meta" in row:
                new["_meta"] = row["_meta"]
            out.append(new)
        ds.rows = out
        ds.fmt = CONVERTED[op]

    def other_rows(self, fmt: str, step: StepPlan) -> tuple[Dataset, list[dict]]:
        """The rows of the source or dataset a step names (mix, concat), copied and shaped like rows of `fmt`."""
        other = self.resolve(step.args.other, step)
        rows = [dict(r) for r in other.rows]
        if other.fmt != fmt:
            conv = make_step({"chat": "to_chat", "instruction": "to_instruction"}.get(fmt, "to_completion"),
                             loc=step.loc)
            if fmt not in ("chat", "instruction"):
                raise DiagnosticError(error("FT624", f"{step.op}: {other.name} has {other.fmt} rows, this dataset "
                                                     f"has {fmt} rows", loc_span(step.loc)))
            tmp = Dataset(other.name, other.fmt, rows)
            self._convert(tmp, conv)
            rows = tmp.rows
        return other, rows

    def mixed_rows(self, n: int, fmt: str, step: StepPlan, stats: dict) -> list[dict]:
        """The rows mix(...) appends after the n rows of `fmt` that reach it."""
        ratio = float(step.args.ratio)
        other, rows = self.other_rows(fmt, step)
        if not rows:
            raise DiagnosticError(error("FT625", f"mix: {other.name} has no rows", loc_span(step.loc)))
        want = round(ratio * n / (1 - ratio)) if ratio < 1 else len(rows)
        seed = step.args.seed if step.args.seed is not None else self.plan.train.seed
        rng = random.Random(seed)
        picked: list[dict] = []
        while len(picked) < want:  # fewer rows than wanted: each is reused before any repeats twice
            order = list(range(len(rows)))
            rng.shuffle(order)
            picked += [rows[i] for i in order[: want - len(picked)]]
        if want > len(rows):
            stats["mix_repeated"] = want - len(rows)
            self.log(f"data: mix({other.name}) wanted {want} rows, {other.name} has {len(rows)}: rows repeat")
        for r in picked:
            r["_meta"] = {**r.get("_meta", {}), "mixed": True}
        stats["mixed"] += len(picked)
        return picked

    def concatenated_rows(self, fmt: str, step: StepPlan, stats: dict) -> list[dict]:
        """The rows concat(...) appends: every row of the other dataset, shaped like rows of `fmt`."""
        _, rows = self.other_rows(fmt, step)
        stats["concatenated"] = stats.get("concatenated", 0) + len(rows)
        return rows


CHUNK_ROWS = 8192  # rows per chunk of a pipeline run chunk by chunk
#: steps that look at one row at a time (dedupe keeps a hash per distinct row, head a count): a pipeline of
#: these runs chunk by chunk, or over a stream
PER_ROW_STEPS = ("dedupe", "filter", "to_chat", "to_instruction", "to_completion", "head")
#: steps that append rows after all the rows that reach them: run chunk by chunk, the source's rows pass
#: them by, and their rows go through the later steps once the source is read (the same rows, in order)
APPEND_STEPS = ("mix", "concat")
#: steps that need the count of every row before them (sample picks positions): run chunk by chunk, the rows
#: before one are spilled, it selects among them by index, and the steps after it read the selection back
BARRIER_STEPS = ("sample",)


@dataclass
class Carried:
    """What a chunk-by-chunk pipeline's steps remember between chunks, one entry per step: dedupe's
    16-byte hashes of the rows it kept, and how many rows each step has let through."""

    seen: list[set[bytes]]
    passed: list[int]

    @classmethod
    def of(cls, steps: list[StepPlan]) -> Carried:
        return cls([set() for _ in steps], [0 for _ in steps])

    def full(self, steps: list[StepPlan], offset: int = 0) -> bool:
        """A head(n) among `steps` (the pipeline's from index `offset`) has let its n rows through: no later
        row can come out of the pipeline."""
        return any(s.op == "head" and self.passed[offset + k] >= s.args.n for k, s in enumerate(steps))


def conserved(stats: dict) -> bool:
    """A pipeline's counts balance: every row in came out, or was counted where it went."""
    return (stats["input"] + stats["augmented"] + stats["mixed"] + stats.get("concatenated", 0)
            == stats["output"] + stats["deduped"] + stats["filtered"] + stats["sampled_out"])


def new_stats(pipe: P.PipelinePlan) -> dict:
    """A pipeline's counts before any row went through (conservation: see PipelineRunner._finish)."""
    return {"source": pipe.source, "input": 0, "deduped": 0, "filtered": 0, "augmented": 0, "mixed": 0,
            "sampled_out": 0, "steps": [{"op": s.op, "rows_in": 0, "rows_out": 0} for s in pipe.steps]}


# ---------------------------------------------------------------------------- step runners
# One per step model of ftlang/plan.py (tests/test_steps_registry.py checks none is missing). A runner
# changes `ds` in place and counts what it removed or added in `stats` (the pipeline's conservation).

Runner = Callable[[PipelineRunner, Dataset, Any, dict], None]
STEP_RUNNERS: dict[type, Runner] = {}


def runs(model: type) -> Callable[[Runner], Runner]:
    def register(fn: Runner) -> Runner:
        assert model not in STEP_RUNNERS, f"{model.__name__} has two runners"
        STEP_RUNNERS[model] = fn
        return fn
    return register


@runs(P.DedupeStep)
def _dedupe(runner: PipelineRunner, ds: Dataset, step: P.DedupeStep, stats: dict,
            seen: set[bytes] | None = None) -> None:
    """`seen` carries the kept rows' hashes (16 bytes each) across the chunks of a chunked pipeline."""
    seen = set() if seen is None else seen
    kept = []
    key = normalized_hash if step.args.mode == "normalized" else content_hash
    for row in ds.rows:
        h = bytes.fromhex(key(row))[:16]
        if h not in seen:
            seen.add(h)
            kept.append(row)
    stats["deduped"] += len(ds.rows) - len(kept)
    ds.rows = kept


@runs(P.FilterStep)
def _filter(runner: PipelineRunner, ds: Dataset, step: P.FilterStep, stats: dict) -> None:
    kept = []
    for row in ds.rows:
        try:
            ok = truthy(evaluate(step.args.expr, public(row)))
        except ExprError as e:
            raise runner.row_error("FT620", f"filter failed on this row: {e} (fields: "
                                            f"{', '.join(public(row))})", row) from None
        if ok:
            kept.append(row)
    stats["filtered"] += len(ds.rows) - len(kept)
    ds.rows = kept


@runs(P.ToChatStep)
@runs(P.ToInstructionStep)
@runs(P.ToCompletionStep)
def _convert(runner: PipelineRunner, ds: Dataset, step: StepPlan, stats: dict) -> None:
    runner._convert(ds, step)


@runs(P.AugmentStep)
def _augment(runner: PipelineRunner, ds: Dataset, step: P.AugmentStep, stats: dict) -> None:
    from ftlang.data.augment import augment_rows  # nlpaug / transformers: only when used

    added = augment_rows(runner, ds.rows, ds.fmt, step)
    stats["augmented"] += len(added)
    ds.rows = ds.rows + added


@runs(P.MixStep)
def _mix(runner: PipelineRunner, ds: Dataset, step: P.MixStep, stats: dict) -> None:
    ds.rows = ds.rows + runner.mixed_rows(len(ds.rows), ds.fmt, step, stats)


def sample_positions(count: int, step: P.SampleStep) -> list[int] | None:
    """The ascending positions sample(n, seed) keeps of `count` rows; None when it keeps them all."""
    if step.args.n >= count:
        return None
    return sorted(random.Random(step.args.seed).sample(range(count), step.args.n))


@runs(P.SampleStep)
def _sample(runner: PipelineRunner, ds: Dataset, step: P.SampleStep, stats: dict) -> None:
    keep = sample_positions(len(ds.rows), step)
    if keep is not None:
        stats["sampled_out"] += len(ds.rows) - len(keep)
        ds.rows = [ds.rows[i] for i in keep]


@runs(P.HeadStep)
def _head(runner: PipelineRunner, ds: Dataset, step: P.HeadStep, stats: dict, passed: int = 0) -> None:
    """`passed`: the rows earlier chunks of a chunked pipeline already let through."""
    keep = max(0, step.args.n - passed)
    stats["sampled_out"] += max(0, len(ds.rows) - keep)  # counted like sample(...): rows left out on purpose
    ds.rows = ds.rows[:keep]


@runs(P.ConcatStep)
def _concat(runner: PipelineRunner, ds: Dataset, step: P.ConcatStep, stats: dict) -> None:
    ds.rows = ds.rows + runner.concatenated_rows(ds.fmt, step, stats)


def source_readers(plan: Plan) -> dict[str, int]:
    """How many times the data stage takes each source's rows: pipelines, mix(other), a split of a source,
    eval's forgetting_on."""
    out: dict[str, int] = {}
    pipes = plan.datasets.pipelines
    names = [p.source for p in pipes.values()]
    names += [getattr(s.args, "other", None) for p in pipes.values() for s in p.steps]
    if plan.datasets.split is not None and plan.datasets.split.dataset not in pipes:
        names.append(plan.datasets.split.dataset)
    if plan.eval.forgetting_on and plan.eval.forgetting_on not in pipes:
        names.append(plan.eval.forgetting_on)
    for n in names:
        if n in plan.data:
            out[n] = out.get(n, 0) + 1
    return out


def split_rows(rows, validation: float | None, seed: int, first: int | None = None) -> tuple[Any, Any, int]:
    """(train, validation, dropped): deterministic by row hash and seed, disjoint by content.

    Only original rows can be held out: the `validation` fraction of the distinct original contents, those
    first by sha256(seed:content hash) (or with `first`, the first N distinct contents in row order), and
    every row with one of those contents; augmented copies follow
    their origin (a copy of a held-out row is dropped, and counted, so no variant of a validation row is
    trained on); mixed replay rows stay in train. A RowTable splits by index into two RowTables (its
    hashes were computed as it was written); a list into two lists."""
    import numpy as np

    if hasattr(rows, "hashes"):  # a RowTable
        keys, metas = rows.hashes(), rows.metas()
    else:
        keys = np.frombuffer(b"".join(bytes.fromhex(content_hash(r)) for r in rows), dtype="S32").copy()
        metas = (r.get("_meta", {}) for r in rows)
    augmented, mixed = np.zeros(len(keys), dtype=bool), np.zeros(len(keys), dtype=bool)
    for i, meta in enumerate(metas):
        if meta.get("augmented") or meta.get("mixed"):
            augmented[i], mixed[i] = bool(meta.get("augmented")), bool(meta.get("mixed"))
            if meta.get("augmented"):  # a copy is held out with its origin
                keys[i] = bytes.fromhex(meta["origin"]) if meta.get("origin") else b"\xff" * 32
    held = _held_keys(keys[~augmented & ~mixed], validation or 0.0, seed, first)
    pos = np.minimum(np.searchsorted(held, keys), max(len(held) - 1, 0))
    in_held = (held[pos] == keys) & ~mixed if len(held) else np.zeros(len(keys), dtype=bool)
    val, dropped = in_held & ~augmented, in_held & augmented
    train = ~in_held
    if hasattr(rows, "select"):
        return rows.select(np.flatnonzero(train)), rows.select(np.flatnonzero(val)), int(dropped.sum())
    return ([r for r, t in zip(rows, train, strict=True) if t], [r for r, v in zip(rows, val, strict=True) if v],
            int(dropped.sum()))


def _held_keys(originals, validation: float, seed: int, first: int | None = None):
    """The held-out contents, sorted: of the distinct original hashes (numpy S32, in row order), the
    fraction first by sha256(f"{seed}:{hex hash}"), or the `first` N by first appearance."""
    import numpy as np

    if first is not None:
        distinct, at = np.unique(originals, return_index=True)
        return np.sort(distinct[np.argsort(at, kind="stable")[:first]])
    distinct = np.unique(originals)
    ranks = np.empty(len(distinct), dtype="S32")
    for at in range(0, len(distinct), 65536):  # in pieces: a million bytes objects at once cost ~100 MB
        buf = distinct[at:at + 65536].tobytes()  # not .tolist(): numpy drops a digest's trailing zero bytes
        ranks[at:at + 65536] = np.frombuffer(b"".join(
            hashlib.sha256(f"{seed}:{buf[i:i + 32].hex()}".encode()).digest() for i in range(0, len(buf), 32)),
            dtype="S32")
    n_val = max(1, round(validation * len(distinct))) if len(distinct) > 1 else 0
    return np.sort(distinct[np.argsort(ranks, kind="stable")[:n_val]])
