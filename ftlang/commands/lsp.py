"""`ftlang lsp`: the language server over stdio (needs the `lsp` extra: pip install 'ftlang[lsp]';
without it the CLI reports FT901 naming that extra)."""

from __future__ import annotations

import argparse

HELP = "run the language server over stdio (diagnostics, hover, completion, definitions, formatting)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # editors' launchers often pass --stdio; stdio is the only transport, so the flag is accepted as is
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")


def run(args: argparse.Namespace) -> int:
    from ftlang.lsp.features import serve

    serve()
    return 0
