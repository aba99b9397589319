"""`ftlang check FILE...`: lint recipes without torch. Exit 0 clean, 1 errors (warnings with --strict), 2 usage."""

from __future__ import annotations

import argparse

from ftlang.commands._common import FORMATS, UsageError, add_set, emit, parse_sets, usage

HELP = "check recipes: syntax, types, names, paths, method rules, resources (no GPU, no torch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help=".ft recipe files, or folders to search for them")
    parser.add_argument("--format", choices=FORMATS, default="human", help="diagnostics output format")
    parser.add_argument("--strict", action="store_true", help="warnings fail the check too")
    add_set(parser)
    parser.add_argument("--data", action="store_true", help="also read and validate every local data row")
    parser.add_argument("--recipe", metavar="NAME", help="check only this recipe of the file")


def data_diagnostics(plans) -> list:
    """Every local data row of the plans validated (`check --data`; an editor runs it on save)."""
    from ftlang.data.validate import check_plan_data  # torch-free, but only --data needs it

    out = []
    for plan in plans:
        if plan is not None:
            out.extend(check_plan_data(plan))
    return out


def print_estimates(plans: list, *, data: bool) -> None:
    """One line per recipe: trainable params, peak memory per device, time and cost (semantic/throughput.py).
    With --data, the token lengths a run of the same plan recorded make the estimate data-aware."""
    from ftlang.semantic.resources import plan_resources, recorded_lengths
    from ftlang.semantic.throughput import length_note, summary_line

    for plan in plans:
        res = plan.resources
        lengths = recorded_lengths(plan) if data else None
        if lengths is not None:
            res = plan_resources(plan, lengths)
        note = length_note(res) if data else ""
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
    for f in files:
        res = check_file(f, sets=sets, recipe=args.recipe)
        diags.extend(res.diagnostics)
        sources.update(res.sources)
        plans.extend(p for p in res.plans.values() if p is not None)
        if args.data:
            diags.extend(data_diagnostics(res.plans.values()))
    diags = sort_diagnostics(diags)
    emit(diags, args.format, sources)
    if args.format == "human":
        print_estimates(plans, data=args.data)
    if any(d.severity is Severity.ERROR for d in diags):
        return 1
    if args.strict and any(d.severity is Severity.WARNING for d in diags):
        return 1
    return 0
