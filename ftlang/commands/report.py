"""`ftlang report show RUN`, `ftlang report diff RUN_A RUN_B` and `ftlang report sweep DIR`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "show a run's report (regenerating it), diff two runs, or summarize a sweep directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("show", help="regenerate report.md/report.html from report.json and print their paths")
    p.add_argument("run", help="a run directory")
    p.add_argument("--markdown", action="store_true", help="print report.md instead of the paths")
    p = sub.add_parser("diff", help="what differs between two runs: plan keys, data hashes, versions, seeds, metrics")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    p = sub.add_parser("sweep", help="write sweep.json/md/html for a sweep directory (a run's, or --sweep-jobs')")
    p.add_argument("dir", help="the sweep directory (it holds sweep.points.json)")


def run(args: argparse.Namespace) -> int:
    from ftlang.report import build, diff

    if args.action == "sweep":
        from ftlang.report.sweep import summarize_dir

        facts = summarize_dir(Path(args.dir))
        if facts is None:
            print(f"ftlang: {args.dir} is not a sweep directory (no sweep.points.json)", file=sys.stderr)
            return 2
        print(f"best point: {facts['best'] or '(none yet)'}; {facts['finished']} of {len(facts['points'])} finished")
        print(Path(args.dir) / "sweep.md")
        return 0
    if args.action == "show":
        diff.load(args.run)  # FT830 when the run has no report.json
        md, html = build.regenerate(args.run)
        if args.markdown:
            print(Path(md).read_text(encoding="utf-8"))
        else:
            print(md)
            print(html)
        return 0
    a, b = diff.load(args.run_a), diff.load(args.run_b)
    d = diff.diff(a, b)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
    else:
        print(diff.format_diff(d, args.run_a, args.run_b))
    return 0
