"""hf_dataset sources through the real `datasets` loader (run time only; `check` never fetches them).

`hf_name` may be a hub id (with revision) or a local path inside the project: a directory written by
`Dataset.save_to_disk`, or a folder / file the `datasets` builders read (json, csv, parquet ...).
Row "lines" are 1-based row indexes; the span's file is `hf:<name>@<revision>`.
"""

from __future__ import annotations

from ftlang.data.codes import row_problem
from ftlang.data.formats import RowError, normalize
from ftlang.data.rows import SourceRows
from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan, SourcePlan
from ftlang.source import loc_span


def _load(plan: Plan, src: SourcePlan):
    import datasets

    name = src.hf_name or ""
    local = plan.resolve(name)
    if (local / "dataset_info.json").is_file() and (local / "state.json").is_file():
        ds = datasets.load_from_disk(str(local))
    else:
        target = str(local) if local.exists() else name
        ds = datasets.load_dataset(target, src.hf_config, split=src.hf_split or "train", revision=src.hf_revision)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[src.hf_split or "train"]
    return ds


def load_hf_source(plan: Plan, src: SourcePlan) -> SourceRows:
    display = f"hf:{src.hf_name}@{src.hf_revision or 'main'}"
    try:
        ds = _load(plan, src)
    except Exception as e:  # noqa: BLE001 - datasets raises many types (network, missing split, bad files)
        raise DiagnosticError(error("FT622", f"cannot load hf_dataset {src.hf_name!r} (split {src.hf_split!r}, "
                                             f"revision {src.hf_revision!r}): {type(e).__name__}: {e}",
                                    loc_span(src.loc), "check the name, split and revision; offline, the "
                                                       "dataset must be in the local datasets cache")) from None
    fingerprint = f"{src.hf_name}@{src.hf_revision or 'main'}:{getattr(ds, '_fingerprint', '')}"
    out = SourceRows(src.name, display, fingerprint=fingerprint)
    labels = list(plan.model.task.labels) or None
    for i, value in enumerate(ds, 1):
        out.read += 1
        try:
            row = normalize(dict(value), src.format, src.fields, labels)
        except RowError as e:
            out.problems.append(row_problem(e.code, e.message, display, i, loc=src.loc, source=src.name))
            out.quarantined.append({"source": src.name, "line": i, "code": e.code, "reason": e.message,
                                    "raw": str(dict(value))[:2000]})
            continue
        row["_meta"] = {"source": src.name, "line": i}
        out.rows.append(row)
    if out.read == 0:
        out.fatal = row_problem("FT609", "the dataset split is empty: no rows", display, 1, loc=src.loc,
                                source=src.name)
    return out


def hf_fingerprint(plan: Plan, src: SourcePlan) -> str:
    try:
        ds = _load(plan, src)
    except Exception:  # noqa: BLE001 - the load error is reported by load_hf_source
        return f"{src.hf_name}@{src.hf_revision or 'main'}:unloadable"
    return f"{src.hf_name}@{src.hf_revision or 'main'}:{getattr(ds, '_fingerprint', '')}"
