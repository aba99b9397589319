"""Fuzzing support shared by tests/test_fuzz_syntax.py and bench/fuzz.py (test code: it drives the whole checker).

    tokens(text) -> list[str]                     a lossless split of recipe text
    mutate(text, ops) -> str                      apply (kind, a, b) operations, deterministically
    random_ops(rng, n) -> list[tuple[str, int, int]]
    fuzz_project(repo, into) -> list[tuple[Path, str]]   every recipe of the repo, in a copy that has
                                                  the traps path mutations aim at (symlink loops, ...)
    invariant_failures(text, path, check=None) -> list[str]   empty when every promise holds

The promises checked: parse, format, render (and the full checker when given) never raise; every
diagnostic is positioned (line and column >= 1, inside the file); a module comes back exactly when
there is no error; formatting is idempotent, keeps every comment and does not change the meaning.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ftlang.diagnostics import Diagnostic, Severity
from ftlang.syntax.lexer import lossless_tokens

KINDS = ("delete", "duplicate", "swap", "insert", "char", "truncate", "nest", "huge", "unicode", "bytes",
         "line_delete", "line_duplicate", "line_swap", "value", "path")
# Mutations that usually keep the text parseable, so the checker behind the parser gets exercised.
GENTLE = ("line_delete", "line_duplicate", "line_swap", "value", "path")
#: what a "path" mutation puts into a string literal (imports, data files, model folders, registries):
#: names and paths too long for the file system, NUL bytes, `..`, directories where files are expected,
#: and the symlink loop and directory that fuzz_project() plants next to every recipe
_LOOP, _DIR = "fuzz_loop_a", "fuzz_dir.jsonl"
_PATHS = ("a" * 300 + ".jsonl", "d/" * 2100 + "x.jsonl", "x" * 255 + ".ft", "\x00", "data/\x00.jsonl", "\x00/..",
          "..", "../" * 40 + "etc/passwd", "data/../data/../../x.jsonl", "stdlib/../../../etc/passwd", "stdlib/..",
          "stdlib/models", ".", "/", "data", "data/", "./", "/dev/null", "/proc/self/root", "~/x",
          _LOOP, _LOOP + "/x.jsonl", _DIR, _DIR + "/x", "fuzz_loop_b/../x.ft", "C:\\x.jsonl", "\u202e.ft",
          " ", "")
_VALUES = ("0", "-1", "1e9", "0.5", "150%", "-3%", "0GB", "1TiB", '""', '"../../etc/passwd"', '"/abs"', "true",
           "nope", "q_proj", "[]", "[1, [2]]", "f()", "jsonl(\"x.jsonl\")", "gguf(\"m.gguf\")", "a < b",
           "not true", "len(x) > 0", "(1 + 2) * 3", "hf(\"a/b\", revision = 1)", "skip(max = 200%)")
_VOCAB = ("{", "}", "[", "]", "(", ")", ",", "=", "|", "<", ">=", "and", "or", "not", "-", "+", "*", "/",
          "recipe", "data", "dataset", "gate", "import", "param", "model_card", "extends", "alias",
          "forgetting on", "true", "\"s\"", "\"", "#", "\n", "1", "2e-4", "10%", "24GB", ".5", "x", "f(", "\\")
_HUGE = ("9" * 5000, "1e999", "-1e400", "9" * 400 + "TB", "0." + "0" * 5000 + "1", "1" * 30 + "%")
_UNICODE = ("é", "✓", "😀", "\u202e", "\u200b", "\ufeff", "\x00", "\x7f", "\u2028", "\ud800", "ﬁ", "İ", "\r")


def tokens(text: str) -> list[str]:
    return lossless_tokens(text)


def mutate(text: str, ops: Sequence[tuple[str, int, int]]) -> str:
    """Apply each (kind, a, b); a and b are any ints, reduced modulo the current sizes."""
    for kind, a, b in ops:
        toks = tokens(text)
        n = len(toks)
        if kind == "delete" and n:
            del toks[a % n]
        elif kind == "duplicate" and n:
            toks.insert(a % n, toks[a % n])
        elif kind == "swap" and n:
            i, j = a % n, b % n
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == "insert":
            toks.insert(a % (n + 1), _VOCAB[b % len(_VOCAB)])
        elif kind == "char" and text:
            i = a % len(text)
            toks = [text[:i], chr(b % 0x3000 or 1), text[i + 1:]]
        elif kind == "truncate":
            toks = [text[: a % (len(text) + 1)]]
        elif kind == "nest":
            opener = "[{(f("[b % 4] if b % 4 < 3 else "f("
            toks.insert(a % (n + 1), opener * (50 + b % 5000))
        elif kind == "huge":
            numbers = [i for i, t in enumerate(toks) if t[:1].isdigit()]
            where = numbers[a % len(numbers)] if numbers else a % (n + 1)
            toks[where:where + bool(numbers)] = [_HUGE[b % len(_HUGE)]]
        elif kind == "unicode":
            toks.insert(a % (n + 1), _UNICODE[b % len(_UNICODE)])
        elif kind in ("line_delete", "line_duplicate", "line_swap"):
            lines = text.splitlines(keepends=True) or [""]
            i, j = a % len(lines), b % len(lines)
            if kind == "line_delete":
                del lines[i]
            elif kind == "line_duplicate":
                lines.insert(i, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            toks = lines
        elif kind == "value":
            spots = [i for i, t in enumerate(toks) if t[:1].isalnum() or t[:1] in "\"_"]
            if spots:
                toks[spots[a % len(spots)]] = _VALUES[b % len(_VALUES)]
        elif kind == "path":
            strings = [i for i, t in enumerate(toks) if t[:1] == '"']
            where = strings[a % len(strings)] if strings else a % (n + 1)
            toks[where:where + bool(strings)] = ['"' + _PATHS[b % len(_PATHS)] + '"']
        elif kind == "bytes":
            rng = random.Random(b)
            raw = bytes(rng.randrange(256) for _ in range(1 + b % 64))
            toks.insert(a % (n + 1), raw.decode("utf-8", errors="replace"))
        text = "".join(toks)
    return text


def random_ops(rng: random.Random, n: int, gentle: bool = False) -> list[tuple[str, int, int]]:
    kinds = GENTLE if gentle else KINDS
    return [(rng.choice(kinds), rng.randrange(1 << 30), rng.randrange(1 << 30)) for _ in range(n)]


# ---------------------------------------------------------------------------- invariants


def _positioned(d: Diagnostic, lines: dict[str, int]) -> str | None:
    if not re.fullmatch(r"FT[0-9]{3}", d.code or ""):
        return f"bad code {d.code!r}"
    s = d.span
    if s is None:
        return f"{d.code} has no position"
    if s.line < 1 or s.column < 1 or s.end_line < s.line or (s.end_line == s.line and s.end_column < s.column):
        return f"{d.code} has a bad span {s}"
    if s.file in lines and s.end_line > lines[s.file]:
        return f"{d.code} points past the end of {s.file}"
    return None


def _render_all(diags: list[Diagnostic], sources: dict[str, Any]) -> list[str]:
    from ftlang.diagnostics import sort_diagnostics
    from ftlang.render import FORMATS, render, summary

    failures = []
    for fmt in FORMATS:
        out = render(diags, fmt, sources=sources)
        if fmt in ("json", "sarif"):
            json.loads(out)
        if fmt == "human" and diags and out.splitlines()[-1] != summary(sort_diagnostics(diags)):
            failures.append("render: human output lacks its summary line")
    return failures


def invariant_failures(text: str, path: str = "fuzz.ft",
                       check: Callable[[str, str], Any] | None = None) -> list[str]:
    """What went wrong for this input (empty: nothing). Exceptions are failures, not raised."""
    from ftlang.source import SourceFile
    from ftlang.syntax.format import format_source, shape
    from ftlang.syntax.parser import parse

    failures: list[str] = []
    try:
        source = SourceFile(path, text)
        module, diags = parse(source)
        lines = {path: source.line_count}
        failures += [f"parse: {m}" for d in diags if (m := _positioned(d, lines))]
        has_error = any(d.severity is Severity.ERROR for d in diags)
        if (module is None) != has_error:
            failures.append("parse: module returned together with errors, or None without one")
        failures += _render_all(diags, {path: source})
        if module is not None:
            out, fdiags = format_source(source)
            if out is None:
                failures.append(f"fmt: refused a file that parses: {[d.code for d in fdiags]}")
            else:
                again, adiags = parse(SourceFile(path, out))
                if again is None:
                    failures.append(f"fmt: output does not parse: {[d.code for d in adiags]}")
                elif shape(again.items) != shape(module.items):
                    failures.append("fmt: changed the meaning")
                elif [c.text for c in again.comments] != [c.text for c in module.comments]:
                    failures.append("fmt: lost or changed a comment")
                elif format_source(SourceFile(path, out))[0] != out:
                    failures.append("fmt: not idempotent")
        if check is not None:
            result = check(text, path)
            cdiags = list(result.diagnostics)
            srcs = dict(getattr(result, "sources", {}) or {})
            clines = {p: s.line_count for p, s in srcs.items()}
            clines.setdefault(path, source.line_count)
            failures += [f"check: {m}" for d in cdiags if (m := _positioned(d, clines))]
            failures += [f"check: a rule crashed: {d.message}"[:300] for d in cdiags if d.code == "FT999"]
            failures += _render_all(cdiags, srcs or {path: source})
    except RecursionError:
        failures.append("RecursionError")
    except Exception as e:  # noqa: BLE001 - the fuzzer's whole point is to catch these
        failures.append(f"{type(e).__name__}: {e}"[:300])
    return failures


def find_checker() -> Callable[[str, str], Any] | None:
    """The full checker pipeline when the semantic layer provides one (check_text(text, path))."""
    try:
        from ftlang.semantic.check import check_text
    except ImportError:
        return None
    return lambda text, path: check_text(text, path)


# ---------------------------------------------------------------------------- every recipe of the repo

_RECIPE_START = re.compile(r"^\s*(recipe|model_card|import|param)\b", re.M)
_FENCE = re.compile(r"```(?:ft|ftlang)\n(.*?)```", re.S)


def _embedded(py: Path) -> list[str]:
    """The recipe texts a test file spells as string literals (those that parse as ftlang)."""
    from ftlang.syntax.parser import parse_text

    try:
        tree = ast.parse(py.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _RECIPE_START.search(node.value):
            if parse_text(node.value)[0] is not None:
                found.append(node.value)
    return found


def fuzz_project(repo: Path, into: Path) -> list[tuple[Path, str]]:
    """Copy examples/, stdlib/, tests/ and docs/ into `into` (a project root) and return (path, text) for
    every recipe: .ft files, recipes embedded in tests/*.py, ```ft blocks of the docs. Next to each
    recipe lie a symlink loop and a directory named like a data file, for the path mutations."""
    into.mkdir(parents=True, exist_ok=True)
    (into / "pyproject.toml").write_text("[project]\nname = \"fuzz\"\n", encoding="utf-8")
    ignore = shutil.ignore_patterns("__pycache__", ".*", "*.pyc", "fuzz_loop_*", "fuzz_dir.*")
    for top in ("examples", "stdlib", "tests", "docs"):
        if (repo / top).is_dir() and not (into / top).exists():
            shutil.copytree(repo / top, into / top, ignore=ignore, symlinks=True)
    recipes: list[tuple[Path, str]] = []
    for f in sorted(into.rglob("*.ft")):
        recipes.append((f, f.read_text(encoding="utf-8", errors="replace")))
    for py in sorted((into / "tests").glob("*.py")):
        recipes += [(py.with_name(f"{py.stem}_{i}.ft"), t) for i, t in enumerate(_embedded(py))]
    for md in sorted([*(into / "docs").glob("*.md"), *(into / "examples").glob("*.md")]):
        text = md.read_text(encoding="utf-8")
        recipes += [(md.with_name(f"{md.stem}_{i}.ft"), t) for i, t in enumerate(_FENCE.findall(text))]
    for folder in {p.parent for p, _ in recipes}:
        a, b = folder / _LOOP, folder / "fuzz_loop_b"
        if not a.is_symlink():
            os.symlink("fuzz_loop_b", a)
            os.symlink(_LOOP, b)
        (folder / _DIR).mkdir(exist_ok=True)
    return recipes
