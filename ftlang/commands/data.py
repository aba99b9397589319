"""`ftlang data preview|stats FILE`: look at a recipe's data before training on it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftlang.atomic import write_json
from ftlang.commands._common import UsageError, add_set, emit, parse_sets, usage

HELP = "inspect a recipe's data: preview rows after every step, or a quality report (stats)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p = sub.add_parser("preview", help="rows after every step and the training text with the masked part marked")
    p.add_argument("file", metavar="FILE", help="a .ft recipe (or a plan .json)")
    p.add_argument("-n", type=int, default=3, help="rows to show per step (default 3)")
    s = sub.add_parser("stats", help="counts, duplicates, token lengths, diversity, quantity guidance")
    s.add_argument("file", metavar="FILE", help="a .ft recipe (or a plan .json)")
    s.add_argument("--json", metavar="OUT", help="write the report here (default: .ftlang-cache/data/stats-<recipe>.json)")
    for q in (p, s):
        q.add_argument("--recipe", metavar="NAME", help="the recipe of the file to use")
        q.add_argument("--allow-outside", action="store_true", help="allow data paths outside the project root")
        q.add_argument("--no-tokenizer", action="store_true", help="do not load the model's tokenizer")
        add_set(q)


def _plan(args: argparse.Namespace):
    from ftlang.plan import Plan

    path = Path(args.file)
    if path.suffix == ".json":
        return Plan.from_json(path.read_text(encoding="utf-8")), None
    from ftlang.semantic.check import check_file

    res = check_file(path, sets=parse_sets(args.sets), recipe=args.recipe)
    if not res.ok or res.plan is None:
        emit(res.diagnostics, "human", res.sources)
        return None, 1
    return res.plan, None


def _tokenizer(plan, skip: bool) -> tuple[object | None, str]:
    if skip:
        return None, "whitespace tokens (--no-tokenizer)"
    try:
        from ftlang.backend.load import load_tokenizer

        return load_tokenizer(plan), "model tokenizer"
    except Exception as e:  # noqa: BLE001 - any failure falls back to whitespace tokens, with a note
        print(f"note: the model's tokenizer could not be loaded ({type(e).__name__}: {str(e)[:200]}); "
              "lengths are whitespace tokens", file=sys.stderr)
        return None, f"whitespace tokens (tokenizer unavailable: {type(e).__name__})"


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "data_command", None):
        return usage("ftlang data needs a subcommand: preview or stats")
    if not Path(args.file).is_file():
        return usage(f"no such file: {args.file}")
    try:
        plan, rc = _plan(args)
    except UsageError as e:
        return usage(str(e))
    if plan is None:
        return rc or 1
    tokenizer, note = _tokenizer(plan, args.no_tokenizer)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.data_command == "preview":
        from ftlang.data.preview import preview

        for line in preview(plan, tokenizer, args.n, allow_outside=args.allow_outside, color=sys.stdout.isatty(),
                            log=log):
            print(line)
        return 0
    from ftlang.data.stats import data_report

    report = data_report(plan, tokenizer, allow_outside=args.allow_outside, log=log, tokenizer_note=note)
    out = Path(args.json) if args.json else plan.resolve(f".ftlang-cache/data/stats-{plan.recipe.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report, ensure_ascii=False)
    _print_report(report)
    print(f"report written to {out}")
    return 0


def _print_report(report: dict) -> None:
    for name, s in report["sources"].items():
        print(f"source {name}: read {s['read']}, kept {s['kept']}, skipped {s['skipped']}")
    for name, d in report["datasets"].items():
        p = report["pipelines"].get(name, {})
        ln = d["length"]
        print(f"dataset {name} ({d['format']}): {d['rows']} rows  [deduped {p.get('deduped', 0)}, filtered "
              f"{p.get('filtered', 0)}, augmented {p.get('augmented', 0)}, mixed {p.get('mixed', 0)}]")
        print(f"  duplicates left: {d['duplicates']['exact']} exact, {d['duplicates']['normalized']} normalized")
        if ln.get("p50") is not None:
            print(f"  length ({ln['unit']}): p50 {ln['p50']}, p90 {ln['p90']}, p99 {ln['p99']}, max {ln['max']}")
        div, ins = d["diversity"], d["instruction_diversity"]
        sampled = f" (over {div['rows']:,} evenly spaced rows)" if div.get("rows", d["rows"]) < d["rows"] else ""
        print(f"  responses distinct-1 {div['distinct_1']}, distinct-2 {div['distinct_2']}; instructions unique "
              f"{ins['unique_ratio']:.0%}, distinct-2 {ins['distinct_2']}{sampled}")
        print(f"  quantity: {d['quantity']['guidance']}")
