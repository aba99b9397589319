"""hf_dataset sources through the real `datasets` loader (run time only; `check` never fetches them).

`hf_name` may be a hub id (with revision) or a local path inside the project: a directory written by
`Dataset.save_to_disk`, or a folder / file the `datasets` builders read (json, csv, parquet ...).
Row "lines" are 1-based row indexes; the span's file is `hf:<name>@<revision>`.
"""

from __future__ import annotations

from collections.abc import Iterator

from ftlang.data.codes import row_problem
from ftlang.data.formats import RowError, normalize
from ftlang.data.rows import SourceRows
from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan, SourcePlan
from ftlang.source import loc_span


def _saved(plan: Plan, src: SourcePlan) -> bool:
    """Whether hf_name is a directory written by Dataset.save_to_disk."""
    local = plan.resolve(src.hf_name or "")
    return (local / "dataset_info.json").is_file() and (local / "state.json").is_file()


def _load(plan: Plan, src: SourcePlan):
    import datasets

    name = src.hf_name or ""
    local = plan.resolve(name)
    if _saved(plan, src):
        ds = datasets.load_from_disk(str(local))
    else:
        target = str(local) if local.exists() else name
        ds = datasets.load_dataset(target, src.hf_config, split=src.hf_split or "train", revision=src.hf_revision)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[src.hf_split or "train"]
    return ds


def _open(plan: Plan, src: SourcePlan):
    """The split to read: a Dataset, or for streaming = true an IterableDataset read lazily."""
    import datasets

    if not src.hf_streaming:
        return _load(plan, src)
    if _saved(plan, src):
        return _load(plan, src).to_iterable_dataset()  # a saved dataset: its Arrow files, read in order
    local = plan.resolve(src.hf_name or "")
    target = str(local) if local.exists() else src.hf_name or ""
    ds = datasets.load_dataset(target, src.hf_config, split=src.hf_split or "train", revision=src.hf_revision,
                               streaming=True)
    if isinstance(ds, datasets.IterableDatasetDict):
        ds = ds[src.hf_split or "train"]
    return ds


def open_hf_rows(plan: Plan, src: SourcePlan) -> tuple[SourceRows, Iterator[dict]]:
    """The source's record (read, problems and quarantine fill in as rows are read) and its normalized
    rows, lazily: a streamed source is read batch by batch as the iterator is consumed."""
    display = f"hf:{src.hf_name}@{src.hf_revision or 'main'}"
    try:
        ds = _open(plan, src)
    except Exception as e:  # noqa: BLE001 - datasets raises many types (network, missing split, bad files)
        raise DiagnosticError(error("FT622", f"cannot load hf_dataset {src.hf_name!r} (split {src.hf_split!r}, "
                                             f"revision {src.hf_revision!r}): {type(e).__name__}: {e}",
                                    loc_span(src.loc), "check the name, split and revision; offline, the "
                                                       "dataset must be in the local datasets cache")) from None
    out = SourceRows(src.name, display, fingerprint=_fingerprint(src, ds))
    return out, _normalized(ds, plan, src, out)


def _normalized(ds, plan: Plan, src: SourcePlan, out: SourceRows) -> Iterator[dict]:
    labels = list(plan.model.task.labels) or None
    for i, value in enumerate(ds, 1):
        out.read += 1
        try:
            row = normalize(dict(value), src.format, src.fields, labels)
        except RowError as e:
            out.problems.append(row_problem(e.code, e.message, out.display, i, loc=src.loc, source=src.name))
            out.quarantined.append({"source": src.name, "line": i, "code": e.code, "reason": e.message,
                                    "raw": str(dict(value))[:2000]})
            continue
        row["_meta"] = {"source": src.name, "line": i}
        yield row


def _fingerprint(src: SourcePlan, ds) -> str:
    # a Dataset has a content fingerprint; a hub stream has only its split info (sizes, checksums): pin
    # a revision (a commit) for a stream whose content may change under the same name
    what = getattr(ds, "_fingerprint", None) or getattr(getattr(ds, "_info", None), "splits", None) or ""
    return f"{src.hf_name}@{src.hf_revision or 'main'}:{what}"


def hf_fingerprint(plan: Plan, src: SourcePlan) -> str:
    try:  # a saved dataset's content fingerprint, streamed or not; a hub stream is not downloaded for it
        ds = _open(plan, src) if src.hf_streaming and not _saved(plan, src) else _load(plan, src)
    except Exception:  # noqa: BLE001 - the load error is reported when the rows are read
        return f"{src.hf_name}@{src.hf_revision or 'main'}:unloadable"
    return _fingerprint(src, ds)
