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


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the libraries' own output: Python warnings, progress bars, log lines")


# Read by tqdm (every progress bar, GGUF de-quantizing included), huggingface_hub and transformers
# when they are imported, and inherited by the processes of a --launch.
_QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
              "PYTHONWARNINGS": "ignore"}
_QUIET_LOGGERS = ("bitsandbytes", "kernels", "accelerate", "peft", "datasets")


def quiet_libraries(verbose: bool) -> None:
    """Hide torch/transformers/bitsandbytes noise unless --verbose: ftlang reports what matters itself
    (as diagnostics and its own progress lines). Call before those libraries are imported."""
    if verbose:
        return
    import logging
    import os
    import warnings

    for name, value in _QUIET_ENV.items():
        os.environ.setdefault(name, value)
    if not sys.warnoptions:  # an explicit -W or PYTHONWARNINGS from the user wins
        warnings.simplefilter("ignore")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
