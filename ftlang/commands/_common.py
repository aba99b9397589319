"""Helpers shared by check and plan: --set parsing and diagnostics output."""

from __future__ import annotations

import argparse
import sys

from ftlang.diagnostics import Diagnostic

FORMATS = ("human", "concise", "json", "github", "sarif")


class UsageError(Exception):
    pass


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                        help="override a `param` of the recipe (repeatable)")


def parse_sets(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def usage(msg: str) -> int:
    print(f"ftlang: {msg}", file=sys.stderr)
    return 2


def emit(diags: list[Diagnostic], fmt: str, sources=None) -> None:
    from ftlang.render import render

    if fmt == "human":
        if diags:
            print(render(diags, "human", color=sys.stderr.isatty(), sources=sources), file=sys.stderr)
        return
    text = render(diags, fmt, sources=sources)
    if text:
        print(text)
