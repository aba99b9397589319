"""`ftlang plan FILE [--recipe NAME] [--set k=v] [--launch-cmd]`: print the validated, hashed plan as JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftlang.atomic import write_text
from ftlang.commands._common import FORMATS, UsageError, add_set, emit, parse_sets, usage

HELP = "compile a recipe into its plan (JSON, content-hashed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a .ft recipe file")
    parser.add_argument("--recipe", metavar="NAME", help="the recipe to compile when the file has several")
    add_set(parser)
    parser.add_argument("--format", choices=FORMATS, default="human", help="diagnostics output format")
    parser.add_argument("--launch-cmd", action="store_true",
                        help="print the command line that launches training for this plan instead")
    parser.add_argument("--libs", action="store_true",
                        help="print the keyword arguments of TrainingArguments, the PEFT config, BitsAndBytesConfig "
                             "and the accelerate config this plan becomes (torch-free) instead")
    parser.add_argument("-o", "--output", metavar="PATH", help="write the plan JSON to PATH")
    parser.add_argument("--sweep-jobs", metavar="DIR",
                        help="a recipe with a sweep: write one plan per point and a Slurm job-array script into DIR")
    parser.add_argument("--compare-hardware", action="store_true",
                        help="instead of the plan, print the estimate line for every catalog GPU that fits, "
                             "cheapest first")


def run(args: argparse.Namespace) -> int:
    from ftlang.diagnostics import has_errors
    from ftlang.semantic.check import check_file
    from ftlang.semantic.paths import path_problem

    try:
        sets = parse_sets(args.sets)
    except UsageError as e:
        return usage(str(e))
    if why := path_problem(args.file, "file"):
        return usage(why)
    res = check_file(args.file, sets=sets, recipe=args.recipe)
    if has_errors(res.diagnostics):  # a recipe error (even one that hides the recipes) is 1, as for check
        emit(res.diagnostics, args.format, res.sources)
        return 1
    if args.recipe is None and len(res.recipes) > 1:
        return usage(f"{args.file} defines {len(res.recipes)} recipes ({', '.join(res.recipes)}): "
                     "choose one with --recipe NAME")
    if args.recipe is None and not res.recipes:
        return usage(f"{args.file} defines no recipe")
    emit(res.diagnostics, args.format, res.sources)
    if has_errors(res.diagnostics) or res.plan is None:
        return 1
    plan = res.plan
    if args.sweep_jobs:
        sweep = res.sweeps.get(plan.recipe.name)
        if sweep is None:
            return usage(f"{args.file}: recipe `{plan.recipe.name}` has no sweep block")
        if sweep.optuna:
            return usage(f"{args.file}: an optuna sweep picks each point from the finished ones, so its points "
                         "cannot be written as jobs in advance: run it with `ftlang run`")
        from ftlang.commands._sweep_jobs import write_jobs

        print(write_jobs(sweep, Path(args.sweep_jobs)))
        return 0
    if args.compare_hardware:
        return _compare(plan)
    if args.launch_cmd:
        import shlex

        from ftlang.backend.launch import launch_command

        # `python`, not this interpreter's path: the command is a function of the recipe, not of the machine
        print(shlex.join(launch_command(plan, python="python")))
        return 0
    text = plan.to_json(indent=2)
    if args.libs:
        import json

        from ftlang.backend.launch import accelerate_config, launcher_for
        from ftlang.backend.libs import library_kwargs

        accelerate = accelerate_config(plan) if launcher_for(plan) == "accelerate" else None
        text = json.dumps(library_kwargs(plan) | {"accelerate": accelerate}, indent=2, ensure_ascii=False)
    if (sweep := res.sweeps.get(plan.recipe.name)) is not None:  # the base plan plus `sweep` (its points)
        import json

        from ftlang.semantic.sweep import sweep_summary

        text = json.dumps({**json.loads(text), "sweep": sweep_summary(sweep)}, indent=2, ensure_ascii=False)
    if args.output:
        write_text(args.output, text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


def _compare(plan) -> int:
    from ftlang.semantic.resources import compare_hardware, recorded_lengths
    from ftlang.semantic.throughput import length_note, summary_line

    lengths = recorded_lengths(plan)
    rows = compare_hardware(plan, lengths)
    if not rows:
        print(f"{plan.recipe.name}: no catalog GPU fits this plan; try qlora, gradient checkpointing, a smaller "
              "batch or max_seq_len, or fsdp across more devices", file=sys.stderr)
        return 1
    for _, res, hw in rows:
        print(summary_line(res, hw))
    print(f"({length_note(rows[0][1])})")
    return 0

