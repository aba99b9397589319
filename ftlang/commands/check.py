"""`ftlang check FILE...`: lint recipes without torch. Exit 0 clean, 1 errors (warnings with --strict), 2 usage."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ftlang.commands._common import FORMATS, UsageError, add_set, emit, parse_sets, usage

if TYPE_CHECKING:
    from ftlang.data.lengths import DataLengths

HELP = "check recipes: syntax, types, names, paths, method rules, resources (no GPU, no torch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help=".ft recipe files, or folders to search for them")
    parser.add_argument("--format", choices=FORMATS, default="human", help="diagnostics output format")
    parser.add_argument("--strict", action="store_true", help="warnings fail the check too")
    add_set(parser)
    parser.add_argument("--data", action="store_true", help="also read, validate and tokenize every local data row: the estimate then uses the rows' token lengths")
    parser.add_argument("--recipe", metavar="NAME", help="check only this recipe of the file")


def data_diagnostics(plans) -> list:
    """Every local data row of the plans validated (`check --data`; an editor runs it on save)."""
    from ftlang.data.validate import check_plan_data  # torch-free, but only --data needs it

    out = []
    for plan in plans:
        if plan is not None:
            out.extend(check_plan_data(plan))
    return out


def plan_data(plan) -> tuple[list, DataLengths]:
    """`check --data` of one plan: its rows validated, then their token lengths for the estimate
    (tokenized here as the run tokenizes them; else the lengths a run of the same plan recorded; else
    None, with the reason). Diagnostics: the rows' problems, and what the run's tokenization refuses."""
    from ftlang.data.lengths import DataLengths, check_lengths
    from ftlang.data.validate import check_plan_data
    from ftlang.diagnostics import Severity
    from ftlang.semantic.resources import recorded_lengths

    loaded: dict = {}
    found = check_plan_data(plan, loaded)
    if any(d.severity is Severity.ERROR for d in found):
        got = DataLengths(why="the data has errors")
    else:
        got = check_lengths(plan, loaded)
    if got.lengths is None and (recorded := recorded_lengths(plan)) is not None:
        got.lengths = recorded  # a run of this plan tokenized it: `why` stays, the note names the run
    return found + got.diagnostics, got


def _local_device(hardware) -> str | None:
    """"cpu" for a plan that names no device nor GPU: the line says "on the local CPU", and the run picks
    the CPU on a machine without CUDA (its estimate then counts the CPU process, resources.py)."""
    return "cpu" if hardware.device == "auto" and not hardware.gpu and not hardware.memory_bytes else None


def print_estimates(plans: list, measured: dict[int, DataLengths] | None) -> None:
    """One line per recipe: trainable params, peak memory per device, time and cost (semantic/throughput.py).
    `measured` (--data): each plan's data lengths, which make the estimate data-aware."""
    from ftlang.semantic.resources import plan_resources
    from ftlang.semantic.throughput import length_note, summary_line

    for plan in plans:
        res, note = plan.resources, ""
        if measured is not None:
            got = measured.get(id(plan))
            res = plan_resources(plan, got.lengths if got else None, device=_local_device(plan.hardware))
            note = length_note(res, got.why if got else None)
        # flushed: the diagnostics that follow go to stderr, and a pipe would otherwise reorder the two
        print(f"{plan.recipe.name}: {summary_line(res, plan.hardware)}" + (f" ({note})" if note else ""), flush=True)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ftlang.diagnostics import Severity, sort_diagnostics
    from ftlang.semantic.check import check_file
    from ftlang.semantic.paths import is_dir, path_problem

    try:
        sets = parse_sets(args.sets)
    except UsageError as e:
        return usage(str(e))
    unusable = [why for f in args.files if (why := path_problem(f, "any"))]
    if unusable:
        return usage("; ".join(unusable))
    files: list[Path] = []
    for f in map(Path, args.files):
        # a folder: every .ft below it, skipping hidden folders (.git, .venv)
        files.extend(sorted(p for p in f.rglob("*.ft")
                            if not any(part.startswith(".") for part in p.relative_to(f).parts))
                     if is_dir(f) else [f])
    if not files:
        return usage(f"no .ft files in {', '.join(args.files)}")
    diags, sources, plans = [], {}, []
    measured: dict[int, DataLengths] | None = {} if args.data else None
    for f in files:
        res = check_file(f, sets=sets, recipe=args.recipe)
        diags.extend(res.diagnostics)
        sources.update(res.sources)
        valid = [p for p in res.plans.values() if p is not None]
        plans.extend(valid)
        for plan in valid if measured is not None else []:
            found, measured[id(plan)] = plan_data(plan)
            diags.extend(found)
    diags = sort_diagnostics(diags)
    emit(diags, args.format, sources)
    if args.format == "human":
        print_estimates(plans, measured)
    if any(d.severity is Severity.ERROR for d in diags):
        return 1
    if args.strict and any(d.severity is Severity.WARNING for d in diags):
        return 1
    return 0
