"""`ftlang schema`: print the plan's JSON Schema (or, with --keys, the recipe key tables)."""

from __future__ import annotations

import argparse

HELP = "print the JSON Schema of the plan (--keys: the recipe blocks' key tables)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys", action="store_true", help="print the per-block key tables as JSON instead")
    parser.add_argument("--markdown", action="store_true", help="with --keys: Markdown tables for the docs")


def run(args: argparse.Namespace) -> int:
    import json

    if args.keys and args.markdown:
        from ftlang.semantic.schema import markdown

        print(markdown())
        return 0
    if args.keys:
        from dataclasses import asdict

        from ftlang.semantic.schema import BLOCKS

        tables = [{"block": b.name, "doc": b.doc, "blocks": list(b.blocks),
                   "keys": [{k: v for k, v in asdict(key).items() if v not in (None, (), False) or k == "default"}
                            for key in b.keys]} for b in BLOCKS]
        print(json.dumps(tables, indent=2, default=list))
        return 0
    from ftlang.plan import plan_json_schema

    print(json.dumps(plan_json_schema(), indent=2))
    return 0
