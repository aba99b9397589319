"""Validation of every local source row against its declared format (torch-free: `ftlang check --data`).

`load_source` is shared with `prepare`: it reads a source, normalizes each row to the canonical format
and returns the good rows plus one positioned Diagnostic per bad row. `enforce` applies the source's
`on_error` policy (fail, or skip up to a limit with a quarantine list).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ftlang.atomic import sha256_file
from ftlang.data.codes import declared_note, row_problem
from ftlang.data.formats import RowError, normalize, required_columns
from ftlang.data.read import ReadResult, read_file
from ftlang.data.rows import SourceRows
from ftlang.diagnostics import Diagnostic, DiagnosticError, Severity, error, info
from ftlang.plan import Plan, SourcePlan
from ftlang.source import loc_span

MAX_LISTED = 20  # problems listed per source; the rest are counted


def resolve_path(plan: Plan, src: SourcePlan, allow_outside: bool = False) -> Path:
    """The source's absolute path; FT619 when it is missing or escapes the project root."""
    assert src.path is not None
    path = plan.resolve(src.path)
    root = Path(plan.recipe.project_root).resolve()
    real = path.resolve()
    if not allow_outside and not (real == root or root in real.parents):
        raise DiagnosticError(error("FT619", f"data path {src.path!r} escapes the project root {root}",
                                    loc_span(src.loc), "keep data inside the project, or pass --allow-outside"))
    if not path.is_file():
        raise DiagnosticError(error("FT619", f"data file {src.path!r} does not exist ({path})", loc_span(src.loc),
                                    "check the path: it is relative to the project root"))
    return path


def _labels(plan: Plan) -> list[str] | None:
    return list(plan.model.task.labels) or None


def load_source(plan: Plan, name: str, *, allow_outside: bool = False, keep: bool = True) -> SourceRows:
    """Read one source and normalize every row. Row problems are collected, never raised.
    keep=False: count and check the rows without holding them (`ftlang check --data` of a large file)."""
    out, rows = open_source(plan, name, allow_outside=allow_outside)
    for row in rows:  # consumed either way: reading fills in the counts and problems
        if keep:
            out.rows.append(row)
    mark_empty(plan, out)
    return out


def mark_empty(plan: Plan, out: SourceRows) -> None:
    """After every row was read: a source with none is a whole-source problem (FT609)."""
    if out.fatal is None and out.read == 0:
        src = plan.data[out.name]
        kind = "dataset split" if src.kind == "hf_dataset" else "source"
        out.fatal = row_problem("FT609", f"the {kind} is empty: no rows", out.display, 1, loc=src.loc,
                                source=out.name)


def open_source(plan: Plan, name: str, *, allow_outside: bool = False) -> tuple[SourceRows, Iterator[dict]]:
    """A source's record and its normalized rows, read lazily: `read`, `problems` and `quarantined` fill in
    as the rows are consumed. A problem that stops the whole file is known at once (`fatal`); an empty
    source is only known at the end (load_source reports it)."""
    src = plan.data[name]
    if src.kind == "hf_dataset":
        from ftlang.data.hf import open_hf_rows  # imports `datasets`: run time only

        return open_hf_rows(plan, src)
    path = resolve_path(plan, src, allow_outside)
    display = os.fspath(path)
    out = SourceRows(name, display, fingerprint=sha256_file(path))
    fmt = "chat" if src.kind == "chat_jsonl" and src.format is None else src.format
    result = read_file(path, src.kind, required_columns(fmt, src.fields))
    if result.fatal is not None:
        f = result.fatal
        out.fatal = row_problem(f.code, f.message, display, f.line, loc=src.loc, source=name)
    return out, _normalized(plan, src, out, result, fmt)


def _normalized(plan: Plan, src: SourcePlan, out: SourceRows, result: ReadResult, fmt: str) -> Iterator[dict]:
    labels = _labels(plan)
    for entry in result.entries:
        out.read += 1
        code, message = entry.code, entry.message
        row = None
        if code is None and src.max_row_chars is not None and len(entry.raw) > src.max_row_chars:
            code, message = "FT608", (f"row is {len(entry.raw):,} chars long, longer than max_row_chars "
                                      f"{src.max_row_chars:,}")
        if code is None:
            try:
                row = normalize(entry.value, fmt, src.fields, labels)
            except RowError as e:
                code, message = e.code, e.message
        if code is not None:
            assert message is not None
            out.problems.append(row_problem(code, message, out.display, entry.line, loc=src.loc, source=src.name))
            out.quarantined.append({"source": src.name, "line": entry.line, "code": code, "reason": message,
                                    "raw": entry.raw})
            continue
        assert row is not None
        row["_meta"] = {"source": src.name, "line": entry.line}
        yield row
    if result.fatal is not None and out.fatal is None:  # found while reading (a lazy reader)
        f = result.fatal
        out.fatal = row_problem(f.code, f.message, out.display, f.line, loc=src.loc, source=src.name)


def _limit(src: SourcePlan, read: int) -> tuple[int, str]:
    oe = src.on_error
    if oe.max_rows is not None:
        return oe.max_rows, f"{oe.max_rows} rows"
    if oe.max_fraction is not None:
        return int(oe.max_fraction * read), f"{oe.max_fraction:.4g} of {read} rows"
    return read, "no limit"


def policy_diagnostics(plan: Plan, rows: SourceRows) -> list[Diagnostic]:
    """The diagnostics the source's on_error policy makes of its problems (listed up to MAX_LISTED)."""
    src = plan.data[rows.name]
    out: list[Diagnostic] = []
    if rows.fatal is not None:
        out.append(rows.fatal)
    skip = src.on_error.mode == "skip"
    for d in rows.problems[:MAX_LISTED]:
        out.append(Diagnostic(d.code, Severity.WARNING if skip else Severity.ERROR, d.message, d.span, d.help,
                              d.notes))
    extra = len(rows.problems) - MAX_LISTED
    if extra > 0:
        out.append(Diagnostic("FT610" if not skip else rows.problems[MAX_LISTED].code,
                              Severity.INFO, f"... and {extra} more bad rows in {rows.display} "
                              f"({len(rows.problems)} in all)", rows.problems[MAX_LISTED].span, None,
                              declared_note(src.loc, rows.name)))
    if skip and rows.problems:
        limit, text = _limit(src, rows.read)
        if len(rows.problems) > limit:
            out.append(error("FT610", f"source `{rows.name}`: {len(rows.problems)} of {rows.read} rows are bad, "
                                      f"over the skip limit ({text})", loc_span(src.on_error.loc or src.loc),
                             "fix the rows listed in the quarantine file, or raise skip(max = ...)",
                             notes=(f"data file: {rows.display}",)))
    return out


def enforce(plan: Plan, rows: SourceRows) -> list[Diagnostic]:
    """Raise DiagnosticError when the policy fails; else return the warnings (skipped rows)."""
    diags = policy_diagnostics(plan, rows)
    if any(d.severity is Severity.ERROR for d in diags):
        raise DiagnosticError(diags)
    return diags


def check_plan_data(plan: Plan, loaded: dict[str, SourceRows] | None = None) -> list[Diagnostic]:
    """Validate every local source of the plan; torch-free. Used by `ftlang check --data`, which then
    tokenizes the rows read here (`loaded`: filled with each source's rows, so none is read twice)."""
    out: list[Diagnostic] = []
    for name, src in plan.data.items():
        if src.kind == "hf_dataset":
            out.append(info("FT627", f"hf_dataset {src.hf_name!r} is not fetched by check; `ftlang run` "
                                     "validates its rows", loc_span(src.loc)))
            continue
        if src.kind == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                out.append(info("FT614", "pyarrow is not installed: parquet rows are not checked",
                                loc_span(src.loc), "pip install pyarrow"))
                continue
        try:
            rows = load_source(plan, name, keep=loaded is not None)  # a bare check holds no rows
        except DiagnosticError as e:
            out.extend(e.diagnostics)
            continue
        out.extend(policy_diagnostics(plan, rows))
        if loaded is not None:
            loaded[name] = rows
    return out
