"""`prepare(plan, tokenizer)`: the whole data stage, from the plan's sources to tokenized train /
validation / extra sets, with stats, fingerprints, a quarantine file and the cache.

Policy for rows longer than max_seq_len: they are truncated on the right, counted (stats.tokens.*.
truncated) and logged; a row left with no trainable token by truncation is a row error (FT618) that
follows the source's on_error (fail, or skip into the quarantine file). Truncated rows are exempt from
the end-of-turn check (their end was cut), every other row must pass it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ftlang.atomic import sha256_file, write_json
from ftlang.data import cache as cache_mod
from ftlang.data.codes import row_problem
from ftlang.data.formats import to_chat
from ftlang.data.packing import PackedCollator, PackedRows, PadCollator, pack_bins
from ftlang.data.rows import content_hash, public
from ftlang.data.rowtable import RawRows, RowTable, rows_of
from ftlang.data.steps import Dataset, PipelineRunner, split_rows
from ftlang.data.stream import TrainStream, streamed_source
from ftlang.data.tables import TableWriter, TokenRows, read_bins, read_table, rows_equal, write_bins
from ftlang.data.templates import ChatRenderer, chat_renderer
from ftlang.data.tokenize import Problem, encode_chat, encode_classification, encode_completion, map_batches
from ftlang.data.validate import MAX_LISTED, _limit, resolve_path
from ftlang.diagnostics import Diagnostic, DiagnosticError, error
from ftlang.plan import Plan
from ftlang.source import loc_span

CHUNK_ROWS = 8192  # rows rendered and tokenized per batch


@dataclass
class Prepared:
    #: Sequences of row dicts built on access from memory-mapped Arrow tables (TokenRows, PackedRows)
    train: Sequence[dict]
    validation: Sequence[dict] | None
    validation_rows: Sequence[dict]  # canonical rows (generation metrics); JsonlRows from the cache
    extra: dict[str, Sequence[dict]]
    stats: dict
    fingerprints: dict[str, str]
    cache_key: str
    cache_hit: bool
    packed: bool = False
    eval_packed: bool = False  # eval { packing }: validation holds PackedRows bins
    pad_id: int = 0
    task: str = "causal_lm"
    quarantine_path: Path | None = None
    extra_rows: dict[str, list[dict]] = field(default_factory=dict)  # canonical rows of `extra`
    warnings: list[Diagnostic] = field(default_factory=list)

    def collator(self) -> Callable[[list[dict]], dict]:
        """Padding (classification, unpacked) or packing with a 4D block-diagonal causal mask.

        The packed collator also takes unpacked rows (validation), each as a one-row bin."""
        if self.packed and self.task == "causal_lm":
            return PackedCollator(self.pad_id)
        return PadCollator(self.pad_id)

    def eval_collator(self) -> Callable[[list[dict]], dict]:
        """The validation set's collator: packed bins need the 4D mask even when training is unpacked."""
        return PackedCollator(self.pad_id) if self.eval_packed else self.collator()


def _pack_validation(plan: Plan, prepared: Prepared) -> Prepared:
    """eval { packing }: bins of the validation rows, built at load (not cached: the cache key and the
    tables stay those of the unpacked data)."""
    if plan.eval.packing and prepared.task == "causal_lm" and prepared.validation:
        v = prepared.validation
        lengths = v.lengths() if hasattr(v, "lengths") else [len(r["input_ids"]) for r in v]
        prepared.validation = PackedRows.of(v, pack_bins(lengths, plan.train.max_seq_len))
        prepared.eval_packed = True
    return prepared


def _pad_id(tokenizer) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        v = getattr(tokenizer, attr, None)
        if v is not None:
            return int(v)
    return 0


def source_fingerprints(plan: Plan, allow_outside: bool, memo_dir: Path | None = None) -> dict[str, str]:
    """Source name → the sha256 of its bytes (hf: name, revision, dataset fingerprint). With `memo_dir`, a
    file whose size and mtime (ns) are as last hashed keeps its hash (memo_dir/fingerprints.json), so a
    cached rerun does not read a large file through."""
    memo_path = memo_dir / "fingerprints.json" if memo_dir is not None else None
    try:
        memo = json.loads(memo_path.read_text()) if memo_path is not None and memo_path.is_file() else {}
    except ValueError:
        memo = {}
    changed = False
    out = {}
    for name, src in plan.data.items():
        if src.kind == "hf_dataset":
            from ftlang.data.hf import hf_fingerprint

            out[name] = hf_fingerprint(plan, src)
        else:
            path = resolve_path(plan, src, allow_outside)
            st, key = path.stat(), str(path.resolve())
            seen = memo.get(key)
            if seen and seen["size"] == st.st_size and seen["mtime_ns"] == st.st_mtime_ns:
                out[name] = seen["sha256"]
                continue
            out[name] = sha256_file(path)
            memo[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": out[name]}
            changed = True
    if changed and memo_path is not None:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(memo_path, memo)
    return out


def _renderer(plan: Plan, tokenizer) -> ChatRenderer | None:
    """None for a classifier, and for a tokenizer without a chat template when the plan names none: a base
    model trains on completion rows as they are, and only chat or instruction rows then fail (FT621)."""
    if plan.model.task.kind == "classify":
        return None
    if plan.train.template is None and not getattr(tokenizer, "chat_template", None):
        return None
    return chat_renderer(plan.train.template, tokenizer, loc_span(plan.train.loc))


def prepare(plan: Plan, tokenizer, *, cache_dir: Path | None = None, allow_outside: bool = False,
            log: Callable[[str], None] = print, run_dir: Path | None = None) -> Prepared:
    cache_dir = Path(cache_dir) if cache_dir is not None else plan.resolve(".ftlang-cache/data")
    fingerprints = source_fingerprints(plan, allow_outside, memo_dir=cache_dir)
    renderer = _renderer(plan, tokenizer)
    key = cache_mod.cache_key(plan, fingerprints, cache_mod.tokenizer_identity(tokenizer),
                              renderer.digest if renderer else None)
    hit = cache_mod.load(cache_dir, key)
    if hit is not None:
        prepared = _from_cache(hit, key, fingerprints, tokenizer)
        prepared.stats["cache"] = {"key": key, "hit": True}
        prepared.quarantine_path = _copy_quarantine(cache_dir / key, run_dir)
        skipped = sum(int(v.get("skipped", 0)) + int(v.get("skipped_at_tokenization", 0))
                      for v in prepared.stats.get("sources", {}).values())
        log(f"data: cache hit {key[:12]} ({len(prepared.train)} train rows"
            + (f"; {skipped} rows were skipped → {prepared.quarantine_path}" if skipped else "") + ")")
        return _pack_validation(plan, prepared)
    tmp = cache_mod.begin(cache_dir, key)
    try:
        built, quarantine = _build(plan, tokenizer, renderer, key, fingerprints, allow_outside, log, tmp)
        shutil.rmtree(tmp / SPILLED, ignore_errors=True)  # the front half's rows: tokenized, no longer needed
        meta = {"stats": built.stats, "extra_rows": built.extra_rows, "packed": built.packed, "task": built.task,
                "has_validation": built.validation is not None, "files": _files(tmp),
                "validation_rows": len(built.validation_rows)}
        entry = cache_mod.commit(tmp, cache_dir, key, meta, quarantine)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    hit = cache_mod.load(cache_dir, key)
    assert hit is not None, f"cache entry {entry} vanished"
    prepared = _from_cache(hit, key, fingerprints, tokenizer)
    prepared.cache_hit, prepared.warnings = False, built.warnings
    if quarantine:
        target = (run_dir / "quarantine.jsonl") if run_dir is not None else entry / "quarantine.jsonl"
        if run_dir is not None:
            cache_mod.write_quarantine(target, quarantine)
        prepared.quarantine_path = target
        prepared.stats["quarantine"] = str(target)
        log(f"data: {len(quarantine)} rows skipped → {target}")
    log(f"data: prepared {len(prepared.train)} train rows, "
        f"{len(prepared.validation or [])} validation rows (cache {key[:12]} stored)")
    return _pack_validation(plan, prepared)


VALIDATION_ROWS = "validation_rows.jsonl"
SPILLED = "rows"  # the directory of a cache entry being written where pipelines spill their rows


class JsonlRows(Sequence):
    """Rows of a JSONL file, read on first access (a cache hit does not pay for rows only generation
    metrics read); compares equal to a list of the same rows."""

    def __init__(self, path: Path, count: int):
        self.path, self._count, self._rows = path, count, None

    def rows(self) -> list[dict]:
        if self._rows is None:
            text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
            self._rows = [json.loads(x) for x in text.splitlines()]
        return self._rows

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i):
        return self.rows()[i]

    def __eq__(self, other) -> bool:
        return rows_equal(self, other)

    __hash__ = None  # type: ignore[assignment]


def _files(entry: Path) -> dict[str, str]:
    """Table name → file in the entry (train, validation, extra:<name>, train.bins)."""
    return {f.name[:-len(".arrow")].replace("extra-", "extra:", 1): f.name for f in sorted(entry.glob("*.arrow"))}


def _table_file(name: str) -> str:
    return name.replace("extra:", "extra-", 1) + ".arrow"


def _write_canonical(path: Path, rows: Iterable[dict], fmt: str) -> int:
    """The canonical form of `rows` (see _canonical) as JSONL, one row at a time; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(_canonical_row(r, fmt), ensure_ascii=False) + "\n")
            n += 1
    return n


def _copy_quarantine(entry: Path, run_dir: Path | None) -> Path | None:
    src = entry / "quarantine.jsonl"
    if not src.is_file():
        return None
    if run_dir is None:
        return src
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"quarantine.jsonl.tmp-{os.getpid()}"
    shutil.copyfile(src, tmp)
    os.replace(tmp, run_dir / "quarantine.jsonl")
    return run_dir / "quarantine.jsonl"


def _from_cache(hit: tuple[dict, Path], key: str, fingerprints: dict[str, str], tokenizer) -> Prepared:
    meta, entry = hit
    files = meta["files"]
    tables = {n: read_table(entry / f) for n, f in files.items() if not n.endswith(".bins")}
    train: Sequence[dict] = tables["train"]
    if "train.bins" in files:
        train = PackedRows(train, *read_bins(entry / files["train.bins"]))
    validation_rows = JsonlRows(entry / VALIDATION_ROWS, meta.get("validation_rows", 0))
    return Prepared(
        train=train, validation=tables.get("validation") if meta["has_validation"] else None,
        validation_rows=validation_rows,
        extra={n.split(":", 1)[1]: r for n, r in tables.items() if n.startswith("extra:")},
        stats=meta["stats"], fingerprints=fingerprints, cache_key=key, cache_hit=True, packed=meta["packed"],
        pad_id=_pad_id(tokenizer), task=meta["task"], extra_rows=meta.get("extra_rows", {}),
    )


def _canonical_row(row: dict, fmt: str) -> dict:
    """A row for generation metrics: chat rows keep messages (instruction rows become chats)."""
    return public(to_chat(row, "instruction")) if fmt == "instruction" else public(row)


def _canonical(rows: Iterable[dict], fmt: str) -> list[dict]:
    return [_canonical_row(r, fmt) for r in rows]


class _Builder:
    def __init__(self, plan: Plan, tokenizer, renderer: ChatRenderer | None, runner: PipelineRunner,
                 log: Callable[[str], None], out: Path | None = None):
        self.plan, self.tokenizer, self.renderer, self.runner, self.log = plan, tokenizer, renderer, runner, log
        self.out = out  # where the tables go (a cache entry being written), None: in memory
        self.quarantine: list[dict] = []
        self.token_stats: dict[str, dict] = {}
        self.token_skipped: dict[str, int] = {}

    def encode(self, name: str, rows: Sequence[dict], fmt: str, *, table: str | None = None) -> TokenRows:
        """Tokenize `rows` batch by batch into a table (`table`, default `name`): an Arrow file in `out`
        (memory-mapped back), or in memory when there is none (preview). A RowTable goes in undecoded
        chunks: the worker that tokenizes a chunk decodes it."""
        batches: Iterator = rows.raw_chunks(CHUNK_ROWS) if isinstance(rows, RowTable) else \
            (list(rows[at:at + CHUNK_ROWS]) for at in range(0, len(rows), CHUNK_ROWS))
        return self.encode_batches(name, batches, fmt, table=table, count=len(rows))

    def encode_batches(self, name: str, batches: Iterator[list[dict] | RawRows], fmt: str, *, table: str | None = None,
                       count: int | None = None) -> TokenRows:
        """`encode` over batches as they come (a stream); `count`: the rows expected, when known."""
        t = self.plan.train
        classify = self.plan.model.task.kind == "classify"
        if not classify and fmt != "completion" and self.renderer is None:
            chat_renderer(t.template, self.tokenizer, loc_span(t.loc))  # raises FT621: no template to render with
        path = self.out / _table_file(table or name) if self.out is not None else None
        writer = TableWriter(path, classify) if path is not None else None
        chunks = []
        problems: list[Problem] = []
        eos: list[Problem] = []
        stats = {"rows_in": 0, "rows": 0, "skipped": 0, "tokens": 0, "trained_tokens": 0, "truncated": 0}
        labels = list(self.plan.model.task.labels)

        def job(raw: list[dict] | RawRows):
            batch = rows_of(raw)
            if classify:
                return encode_classification(batch, self.tokenizer, labels, max_seq_len=t.max_seq_len)
            if fmt == "completion":
                return encode_completion(batch, self.tokenizer, max_seq_len=t.max_seq_len)
            assert self.renderer is not None
            return encode_chat(batch, fmt, self.tokenizer, self.renderer, train_on=t.train_on,
                               max_seq_len=t.max_seq_len)

        def counted() -> Iterator[list[dict] | RawRows]:
            for batch in batches:
                stats["rows_in"] += len(batch)
                yield batch

        workers = t.data_workers or os.cpu_count() or 1
        if count is not None:
            workers = min(workers, -(-count // CHUNK_ROWS))
        for enc in map_batches(job, counted(), workers):
            problems += enc.problems
            eos += enc.eos_failures
            for k in ("tokens", "trained_tokens", "truncated"):
                stats[k] += getattr(enc, k)
            stats["rows"] += len(enc.kept)
            if writer is not None:
                writer.write(enc.chunk)
            else:
                chunks.append(enc.chunk)
        self._eos(name, eos)
        self._problems(name, problems)
        if writer is not None:
            writer.close()
        if stats["truncated"]:
            self.log(f"data: {name}: {stats['truncated']} rows longer than max_seq_len {t.max_seq_len} were "
                     "truncated")
        stats["skipped"] = len(problems)
        stats["conservation"] = stats["rows_in"] == stats["rows"] + len(problems)
        self.token_stats[name] = stats
        return read_table(path) if path is not None else TokenRows.of(chunks)

    def _eos(self, name: str, failures: list[Problem]) -> None:
        if not failures:
            return
        first = failures[0]
        template = self.renderer.name if self.renderer else "?"
        d = self.runner.row_error("FT617", f"the end-of-turn token is not inside the trained labels "
                                           f"({first.message}; template {template!r}, {len(failures)} "
                                           f"rows of {name}): the model would never learn to stop",
                                  first.row).diagnostics[0]
        raise DiagnosticError(Diagnostic(d.code, d.severity, d.message, d.span,
                                         "use a template whose assistant turn ends with the end-of-turn token "
                                         "(train { template = \"chatml\" }), or fix the tokenizer's chat_template",
                                         d.notes))

    def _problems(self, name: str, problems: list[Problem]) -> None:
        if not problems:
            return
        fail: list[Diagnostic] = []
        for p in problems:
            src_name = p.row.get("_meta", {}).get("source", "")
            src = self.plan.data.get(src_name)
            path, line = self.runner.display(p.row)
            if src is not None and src.on_error.mode == "skip":
                self.quarantine.append({"source": src_name, "line": line, "code": p.code, "reason": p.message,
                                        "raw": public(p.row)})
                self.token_skipped[src_name] = self.token_skipped.get(src_name, 0) + 1
            else:
                fail.append(row_problem(p.code, p.message, path, line, loc=src.loc if src else None,
                                        source=src_name))
        if fail:
            more = len(fail) - MAX_LISTED
            raise DiagnosticError(fail[:MAX_LISTED] + ([Diagnostic(fail[0].code, fail[0].severity,
                                                                   f"... and {more} more rows", fail[MAX_LISTED].span)]
                                                       if more > 0 else []))
        for src_name, n in self.token_skipped.items():
            src = self.plan.data[src_name]
            s = self.runner.sources.get(src_name)
            read = s.read if s else n
            limit, text = _limit(src, read)
            skipped = (len(s.problems) if s else 0) + n
            if skipped > limit:
                raise DiagnosticError(error("FT610", f"source `{src_name}`: {skipped} of {read} rows skipped, over "
                                                     f"the skip limit ({text})", loc_span(src.on_error.loc or src.loc)))


def _validation_pipeline(runner: PipelineRunner) -> tuple[Dataset, dict]:
    """`dataset validation = ...`: its rows less augmented copies (never validate on a variant)."""
    v = runner.run("validation")
    originals = [r for r in v.rows if not r.get("_meta", {}).get("augmented")]
    return Dataset("validation", v.fmt, originals), {"validation_augmented_dropped": len(v.rows) - len(originals)}


def _check_split(plan: Plan, train: int, validation: int) -> None:
    sp = plan.datasets.split
    if sp is not None and (not validation or not train):
        raise DiagnosticError(error("FT625", f"split left {'validation' if not validation else 'train'} empty "
                                             f"({train + validation} rows)", loc_span(sp.loc),
                                    "add rows or change the validation fraction"))


def _check_train(plan: Plan, rows: int) -> None:
    if not rows:
        raise DiagnosticError(error("FT625", "the train dataset is empty after its steps",
                                    loc_span(plan.datasets.pipelines["train"].loc)))


def _whole_datasets(runner: PipelineRunner) -> tuple[list[dict], str, Dataset | None, dict]:
    """(train rows, their format, the validation set or None, the split's stats), every source read whole."""
    plan = runner.plan
    pipes = plan.datasets.pipelines
    train_ds = runner.run("train")
    split_stats: dict = {}
    val_ds: Dataset | None = None
    train_rows = train_ds.rows
    if "validation" in pipes:
        val_ds, split_stats = _validation_pipeline(runner)
    elif plan.datasets.split is not None:
        sp = plan.datasets.split
        target = runner.run(sp.dataset) if sp.dataset in pipes else runner.resolve(sp.dataset)
        tr, va, dropped = split_rows(target.rows, sp.validation, sp.seed, sp.first)
        if sp.dataset == "train":
            train_rows = tr
        else:  # split another dataset: its held-out rows must not be trained on either
            held = {content_hash(r) for r in va}
            train_rows = [r for r in train_ds.rows if content_hash(r) not in held]
        val_ds = Dataset("validation", target.fmt, va)
        split_stats.update({"dataset": sp.dataset, "seed": sp.seed, "fraction": sp.validation,
                            **({"method": "first", "first": sp.first} if sp.first else {}),
                            "train": len(tr), "validation": len(va), "augmented_copies_dropped": dropped,
                            "conservation": len(tr) + len(va) + dropped == len(target.rows)})
        _check_split(plan, len(tr), len(va))
    _check_train(plan, len(train_rows))
    return train_rows, train_ds.fmt, val_ds, split_stats


def _build(plan: Plan, tokenizer, renderer, key, fingerprints, allow_outside, log,
           out: Path) -> tuple[Prepared, list[dict]]:
    runner = PipelineRunner(plan, allow_outside=allow_outside, log=log, release=True, spill=out / SPILLED)
    b = _Builder(plan, tokenizer, renderer, runner, log, out)
    pipes = plan.datasets.pipelines
    streamed = streamed_source(plan, log)
    if streamed is not None:
        stream = TrainStream(runner, streamed, log)
        train = b.encode_batches("train", stream.batches(), stream.fmt)
        split_stats = stream.finish()
        train_fmt = stream.fmt
        val_ds: Dataset | None = None
        if "validation" in pipes:
            val_ds, split_stats = _validation_pipeline(runner)
        elif plan.datasets.split is not None:
            val_ds = Dataset("validation", stream.fmt, stream.validation)
            _check_split(plan, stream.train_rows, len(stream.validation))
        _check_train(plan, stream.train_rows)
    else:
        train_rows, train_fmt, val_ds, split_stats = _whole_datasets(runner)
    extra_names = [n for n in pipes if n not in ("train", "validation")]
    if plan.eval.forgetting_on and plan.eval.forgetting_on not in extra_names + ["train", "validation"]:
        extra_names.append(plan.eval.forgetting_on)
    extra_ds = {name: runner.resolve(name) for name in extra_names}
    n_val_rows = _write_canonical(out / VALIDATION_ROWS, val_ds.rows, val_ds.fmt) if val_ds else 0
    validation_rows = JsonlRows(out / VALIDATION_ROWS, n_val_rows)
    runner.release_rows()
    if streamed is None:
        train = b.encode("train", train_rows, train_fmt)
    validation = b.encode("validation", val_ds.rows, val_ds.fmt) if val_ds is not None else None
    extra: dict[str, Sequence[dict]] = {}
    extra_rows: dict[str, list[dict]] = {}
    for name, ds in extra_ds.items():
        extra[name] = b.encode(name, ds.rows, ds.fmt, table=f"extra:{name}")
        extra_rows[name] = _canonical(ds.rows, ds.fmt)
    packed = plan.train.packing and plan.model.task.kind == "causal_lm"
    unpacked = len(train)
    if packed:
        bins = pack_bins(train.lengths(), plan.train.max_seq_len)
        write_bins(out / _table_file("train.bins"), bins)
        train = PackedRows.of(train, bins)
    quarantine = [q for s in runner.sources.values() for q in s.quarantined] + b.quarantine
    sources = {}
    for n in runner.sources:
        st = runner.source_stats(n)
        st["skipped_at_tokenization"] = b.token_skipped.get(n, 0)
        sources[n] = st
    pipelines = {n: d.stats for n, d in runner.datasets.items() if d.stats}
    conservation = (all(s["conservation"] for s in sources.values())
                    and all(p.get("conservation", True) for p in pipelines.values())
                    and split_stats.get("conservation", True)
                    and all(t["conservation"] for t in b.token_stats.values()))
    stats = {"sources": sources, "pipelines": pipelines, "split": split_stats, "tokens": b.token_stats,
             "packing": {"enabled": packed, "rows": unpacked, "bins": len(train) if packed else None},
             "format": {"train": train_fmt, "validation": val_ds.fmt if val_ds else None},
             "conservation": conservation, "cache": {"key": key, "hit": False}}
    prepared = Prepared(
        train=train, validation=validation, validation_rows=validation_rows,
        extra=extra, stats=stats, fingerprints=fingerprints, cache_key=key, cache_hit=False, packed=packed,
        pad_id=_pad_id(tokenizer), task=plan.model.task.kind, extra_rows=extra_rows, warnings=runner.warnings,
    )
    return prepared, quarantine
