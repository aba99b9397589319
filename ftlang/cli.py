"""The `ftlang` command line: a thin dispatcher.

Each command lives in ftlang/commands/<name>.py and exposes
    HELP: str
    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int
Command modules import only the core dependencies at module level; torch & co. are imported inside
`run` of the commands that train, prepare data or serve.

Exit codes: 0 clean, 1 errors (or warnings under --strict, or a missing dependency), 2 usage errors,
3 a failed eval gate, 70 an internal error (a bug, or ftlang's own grammar/stdlib files missing), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import os
import sys
from types import ModuleType

from ftlang import __version__
from ftlang.diagnostics import DiagnosticError

COMMANDS = (
    "check", "fmt", "plan", "schema", "explain", "run", "report", "data", "registry", "serve", "lsp", "import",
    "card",
)


def _load(name: str) -> ModuleType | None:
    module = f"ftlang.commands.{name}_" if keyword.iskeyword(name) else f"ftlang.commands.{name}"  # import_
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return None  # a command not built yet is simply absent from --help
        raise


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The argument parser; `only`: register just that command (its module alone is imported, which keeps
    `ftlang check` from importing every other command's dependencies)."""
    parser = argparse.ArgumentParser(prog="ftlang", description="A compiler for fine-tuning recipes.")
    parser.add_argument("--version", action="version", version=f"ftlang {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, ModuleType] = {}
    for name in ((only,) if only in COMMANDS else COMMANDS):
        module = _load(name)
        if module is None:
            continue
        modules[name] = module
        p = sub.add_parser(name, help=getattr(module, "HELP", None), description=getattr(module, "HELP", None))
        module.add_arguments(p)
    return parser, modules


def _print(diagnostics: list, args: argparse.Namespace) -> None:
    from ftlang.render import render

    fmt = getattr(args, "format", None) or "human"
    print(render(diagnostics, fmt), file=sys.stderr if fmt == "human" else sys.stdout)


def main(argv: list[str] | None = None) -> int:
    process = argv is None  # the command line of this process, not a call from Python (tests, sweeps)
    argv = sys.argv[1:] if process else argv
    parser, modules = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    if process and getattr(modules[args.command], "TRAINS", False):
        from ftlang.allocator import reexec_under_jemalloc

        reexec_under_jemalloc(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except DiagnosticError as e:
        _print(e.diagnostics, args)
        return 1
    except KeyboardInterrupt:
        print("ftlang: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback for users
        from ftlang.environment import missing_dependency
        from ftlang.resources import MissingResource

        missing = missing_dependency(e, args.command)
        if missing is not None:
            _print([missing], args)
            return 1
        if os.environ.get("FTLANG_DEBUG"):
            raise
        if isinstance(e, MissingResource):
            print(f"ftlang: internal error: {e}", file=sys.stderr)
            print("help: this install of ftlang is incomplete; reinstall it: pip install --force-reinstall ftlang",
                  file=sys.stderr)
            return 70
        print(f"ftlang: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        print("help: this is a bug in ftlang; rerun with FTLANG_DEBUG=1 for the traceback and report it",
              file=sys.stderr)
        return 70


if __name__ == "__main__":
    raise SystemExit(main())
