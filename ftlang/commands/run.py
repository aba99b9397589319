"""`ftlang run FILE [--recipe NAME] [--set k=v] [--out DIR] [--resume [RUN_DIR]] [--launch] [--force]
[--allow-outside] [--plan PLAN_JSON] [--verbose]`: compile the recipe, then train, evaluate, gate, export, register."""

from __future__ import annotations

import argparse
import sys

from ftlang.commands._common import (
    FORMATS,
    UsageError,
    add_set,
    add_verbose,
    emit,
    parse_sets,
    quiet_libraries,
    usage,
)

HELP = "train a recipe: data → train → eval → gates → export → registry → report"
#: cli.py runs this command under jemalloc when installed (ftlang/allocator.py says why)
TRAINS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", nargs="?", help="a .ft recipe file (or use --plan)")
    parser.add_argument("--recipe", metavar="NAME", help="the recipe to run when the file has several")
    add_set(parser)
    parser.add_argument("--out", metavar="DIR", help="the run directory (default runs/<recipe>/<hash>-<stamp>/)")
    parser.add_argument("--resume", metavar="RUN_DIR", nargs="?", const=True, default=None,
                        help="continue the latest run of this recipe (or RUN_DIR) from its last complete checkpoint")
    parser.add_argument("--launch", action="store_true",
                        help="launch on every device of `hardware` (accelerate launch / torchrun)")
    parser.add_argument("--force", action="store_true", help="export and register even when a gate fails")
    parser.add_argument("--allow-outside", action="store_true",
                        help="allow data paths outside the project root")
    parser.add_argument("--plan", metavar="PLAN_JSON", help="run a plan written by `ftlang plan -o` instead of a recipe")
    parser.add_argument("--points", metavar="K", type=int, help="a recipe with a sweep: run only its first K points")
    parser.add_argument("--register", choices=("best", "all"), default="best",
                        help="a recipe with a sweep: register the best passing point (default) or every passing one")
    parser.add_argument("--format", choices=FORMATS, default="human", help="diagnostics output format")
    add_verbose(parser)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_plan(args: argparse.Namespace):
    """(plan, recipe file, sweep or None) from --plan JSON or by compiling FILE; None after printing diagnostics."""
    import json
    from pathlib import Path

    from ftlang.diagnostics import DiagnosticError, error, has_errors
    from ftlang.plan import Plan, plan_hash

    if args.plan:
        path = Path(args.plan)
        if not path.is_file():
            raise UsageError(f"no such plan file: {args.plan}")
        text = path.read_text(encoding="utf-8")
        if '"sweep"' in text and "sweep" in json.loads(text):
            raise UsageError(f"{args.plan} is a sweep's plan (it lists points): run the recipe, or write one plan "
                             "per point with `ftlang plan FILE --sweep-jobs DIR`")
        try:
            plan = Plan.from_json(text)
        except ValueError as e:
            raise DiagnosticError(error("FT101", f"{args.plan} is not a valid plan: {str(e).splitlines()[0]}",
                                        None, help="write it with `ftlang plan FILE -o plan.json`")) from None
        if plan.sha256 and plan.sha256 != plan_hash(plan):
            raise DiagnosticError(error("FT101", f"{args.plan} was edited: its sha256 does not match its content",
                                        None, help="recompile it with `ftlang plan FILE -o plan.json`"))
        return plan.seal(), args.file or plan.recipe.file, None
    if not args.file:
        raise UsageError("ftlang run needs a recipe FILE (or --plan PLAN_JSON)")
    if not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    from ftlang.semantic.check import check_file

    res = check_file(args.file, sets=parse_sets(args.sets), recipe=args.recipe)
    if args.recipe is None and len(res.recipes) > 1:
        raise UsageError(f"{args.file} defines {len(res.recipes)} recipes ({', '.join(res.recipes)}): "
                         "choose one with --recipe NAME")
    emit(res.diagnostics, args.format, res.sources)
    if has_errors(res.diagnostics) or res.plan is None:
        return None
    return res.plan, args.file, res.sweeps.get(res.plan.recipe.name)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    quiet_libraries(args.verbose)
    try:
        loaded = load_plan(args)
    except UsageError as e:
        return usage(str(e))
    if loaded is None:
        return 1
    plan, recipe_file, sweep = loaded
    out = Path(args.out) if args.out else None
    if sweep is not None:
        return _sweep(args, sweep, plan, out, recipe_file)
    if args.launch:
        from ftlang.backend.launch import perform_launch

        return perform_launch(plan, recipe_file, args, out)
    from ftlang.backend.run import execute

    resume = Path(args.resume) if isinstance(args.resume, str) else args.resume
    return execute(plan, run_dir=out, resume=resume, force=args.force, allow_outside=args.allow_outside,
                   log=_log, recipe_file=recipe_file)


def _sweep(args: argparse.Namespace, sweep, plan, out, recipe_file: str) -> int:
    from ftlang.backend.sweep import execute_sweep

    if args.launch or args.resume:
        return usage("a sweep runs its points one by one and resumes by itself: rerun without --launch/--resume")
    if args.points is not None and args.points < 1:
        return usage("--points expects a positive count")
    return execute_sweep(sweep, plan, out=out, points=args.points, force=args.force, allow_outside=args.allow_outside,
                         log=_log, recipe_file=recipe_file, register_which=args.register,
                         on_error=lambda e: emit(e.diagnostics, args.format))
