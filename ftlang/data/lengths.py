"""The training rows' token lengths as the estimator needs them: from the run's prepared table
(`ftlang run`), or tokenized here without torch (`ftlang check --data`) by the data stage's own
pipeline, renderer and encoders, with data/light_tokenizer.py's tokenizer; the two agree row for row.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field

from ftlang.data.rows import SourceRows
from ftlang.diagnostics import Diagnostic, DiagnosticError
from ftlang.plan import AugmentStep, Plan


@dataclass
class DataLengths:
    """`lengths` (resources.lengths_summary) or `why` they are unknown; `diagnostics`: the rows the run
    would refuse at tokenization (end-of-turn not trained, nothing left to train on)."""

    lengths: dict | None = None
    why: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def table_lengths(table: Sequence[dict], plan: Plan, packed: bool) -> dict:
    """lengths_summary of a tokenized train table (TokenRows, PackedRows, or a list of row dicts)."""
    from ftlang.semantic.resources import lengths_summary

    lengths = [int(n) for n in table.lengths()] if hasattr(table, "lengths") else [
        len(r["input_ids"]) for r in table]
    return lengths_summary(lengths, plan.train.batch, packed)


def _not_here(plan: Plan) -> str | None:
    """Why only `ftlang run` can prepare this plan's rows (hub datasets, model-backed augmentation)."""
    hub = next((s.hf_name for s in plan.data.values() if s.kind == "hf_dataset"), None)
    if hub is not None:
        return f"hf_dataset {hub!r} is fetched only by `ftlang run`"
    if any(isinstance(s, AugmentStep) for p in plan.datasets.pipelines.values() for s in p.steps):
        return "augment(...) runs only in `ftlang run`"
    if any(s.kind == "parquet" for s in plan.data.values()) and importlib.util.find_spec("pyarrow") is None:
        return "pyarrow is not installed: parquet rows are not read"
    return None


def check_lengths(plan: Plan, sources: dict[str, SourceRows] | None = None) -> DataLengths:
    """The training rows tokenized as `ftlang run` tokenizes them (in memory, nothing cached or written);
    `sources`: rows already read and validated (validate.check_plan_data), not read again."""
    from ftlang.data.light_tokenizer import Unavailable, light_tokenizer

    why = _not_here(plan)
    if why is not None:
        return DataLengths(why=why)
    try:
        tokenizer = light_tokenizer(plan)
    except Unavailable as e:
        return DataLengths(why=str(e))
    from ftlang.data.packing import PackedRows, pack_bins
    from ftlang.data.prepare import _Builder, _renderer, _whole_datasets
    from ftlang.data.steps import PipelineRunner

    def quiet(_message: str) -> None:
        return None

    try:
        runner = PipelineRunner(plan, log=quiet, sources=dict(sources or {}), release=True)
        rows, fmt, _validation, _split = _whole_datasets(runner)
        train = _Builder(plan, tokenizer, _renderer(plan, tokenizer), runner, quiet).encode("train", rows, fmt)
    except DiagnosticError as e:
        return DataLengths(why="the data has errors", diagnostics=list(e.diagnostics))
    packed = plan.train.packing and plan.model.task.kind == "causal_lm"
    if packed:
        train = PackedRows.of(train, pack_bins(train.lengths(), plan.train.max_seq_len))
    return DataLengths(lengths=table_lengths(train, plan, packed))
