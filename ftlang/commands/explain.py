"""`ftlang explain CODE`: what a diagnostic code means and what to do about it."""

from __future__ import annotations

import argparse

HELP = "explain a diagnostic code (e.g. ftlang explain FT301); --list shows all"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", nargs="?", metavar="CODE", help="a code such as FT301")
    parser.add_argument("--list", action="store_true", help="list every documented code")


def run(args: argparse.Namespace) -> int:
    import sys

    from ftlang.codes import all_codes, lookup

    if args.list or not args.code:
        for doc in all_codes():
            print(f"{doc.code}  {doc.title}")
        return 0 if args.list else 2
    doc = lookup(args.code)
    if doc is None:
        print(f"ftlang: no explanation for {args.code!r}; `ftlang explain --list` shows the codes", file=sys.stderr)
        return 2
    print(f"{doc.code}: {doc.title}  [{doc.severity.value}, {doc.stage.value}]\n\n{doc.explain}")
    return 0
