"""`ftlang report show RUN` and `ftlang report diff RUN_A RUN_B`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "show a run's report (regenerating it), or diff two runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("show", help="regenerate report.md/report.html from report.json and print their paths")
    p.add_argument("run", help="a run directory")
    p.add_argument("--markdown", action="store_true", help="print report.md instead of the paths")
    p = sub.add_parser("diff", help="what differs between two runs: plan keys, data hashes, versions, seeds, metrics")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")


def run(args: argparse.Namespace) -> int:
    from ftlang.report import build, diff

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
