"""`ftlang fmt FILE...`: rewrite recipes in the canonical layout (or, with --check, list those that differ)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftlang.atomic import write_text
from ftlang.diagnostics import Diagnostic, error
from ftlang.source import SourceFile

HELP = "rewrite .ft files in the canonical layout (--check: only report files that would change)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help=".ft files or folders (searched for *.ft); '-' reads stdin and writes stdout")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files that would be reformatted")
    parser.add_argument("--diff", action="store_true",
                        help="with --check, also print a unified diff of what would change")
    parser.add_argument("--format", choices=("human", "concise", "json", "github", "sarif"), default="human",
                        help="how to print syntax errors (default: human)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")


def _expand(paths: list[str]) -> list[str]:
    from ftlang.semantic.paths import is_dir

    out: list[str] = []
    for p in paths:
        if p != "-" and is_dir(p):  # pathlib's is_dir raises on a name too long for the file system
            out.extend(str(f) for f in sorted(Path(p).rglob("*.ft")) if f.is_file())
        else:
            out.append(p)
    return out


def _read(path: str) -> tuple[SourceFile | None, list[Diagnostic]]:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        return None, [error("FT016", f"cannot read {path}: {e.strerror or e}", None,
                            "check that the file exists and is readable")]
    name = "<stdin>" if path == "-" else path
    from ftlang.syntax.parser import not_utf8

    src, bad = SourceFile.decode(name, data)
    if bad is None:
        return src, []
    # Rewriting would replace the bad bytes; point at the first one and leave the file alone.
    return None, [not_utf8(src, bad, "ftlang leaves it untouched")]


def _write_atomic(path: str, text: str) -> None:
    target = Path(path)
    mode = target.stat().st_mode & 0o7777 if target.exists() else None
    write_text(target, text, fsync=True, mode=mode, newline="")


def run(args: argparse.Namespace) -> int:
    from ftlang.render import render
    from ftlang.syntax.format import format_source

    color = args.color == "always" or (args.color == "auto" and sys.stderr.isatty() and args.format == "human")
    failed = changed = unchanged = 0
    problems: list[Diagnostic] = []
    sources: dict[str, SourceFile] = {}
    for path in _expand(args.files):
        src, diags = _read(path)
        if src is not None:
            sources[src.path] = src
            out, diags = format_source(src)
        if src is None or out is None:
            problems.extend(diags)
            failed += 1
            continue
        if out == src.text:
            unchanged += 1
            if path == "-" and not args.check:
                sys.stdout.write(out)
            continue
        changed += 1
        if args.check:
            print(f"would reformat {src.path}")
            if args.diff:
                import difflib

                for line in difflib.unified_diff(
                        src.text.splitlines(keepends=True), out.splitlines(keepends=True),
                        fromfile=f"{src.path} (now)", tofile=f"{src.path} (formatted)"):
                    sys.stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        elif path == "-":
            sys.stdout.write(out)
        else:
            try:
                _write_atomic(path, out)
            except OSError as e:
                problems.append(error("FT016", f"cannot write {path}: {e.strerror or e}", None,
                                      "check the folder's permissions and free space"))
                failed += 1
                changed -= 1
                continue
            print(f"reformatted {src.path}", file=sys.stderr)
    if problems:
        text = render(problems, args.format, color=color, sources=sources)
        print(text, file=sys.stderr if args.format == "human" else sys.stdout)
    verb = "would be reformatted" if args.check else "reformatted"
    parts = [f"{changed} file{'s' * (changed != 1)} {verb}", f"{unchanged} unchanged"]
    if failed:
        parts.append(f"{failed} with errors (not rewritten)")
    if "-" not in args.files or args.check:
        print(", ".join(parts), file=sys.stderr)
    return 1 if failed or (args.check and changed) else 0
