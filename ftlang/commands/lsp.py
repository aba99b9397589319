"""`ftlang lsp`: the language server over stdio (needs the `lsp` extra: pip install 'ftlang[lsp]')."""

from __future__ import annotations

import argparse

HELP = "run the language server over stdio (diagnostics, hover, completion, definitions, formatting)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # editors' launchers often pass --stdio; stdio is the only transport, so the flag is accepted as is
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")


def run(args: argparse.Namespace) -> int:
    try:
        from ftlang.lsp.server import serve
    except ImportError as e:
        from ftlang.commands._common import usage

        return usage(f"the language server needs pygls ({e.name} is missing); install it with "
                     "pip install 'ftlang[lsp]'")
    serve()
    return 0
