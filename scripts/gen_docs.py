"""Regenerate the docs and files that are derived from the code, so they never drift from it.

- docs/language.md: the key tables between the `<!-- BEGIN GENERATED ... -->` / `<!-- END GENERATED -->`
  markers come from ftlang/semantic/schema.py (the tables the checker itself uses); the prose around
  them is hand-written and left alone.
- docs/diagnostics.md: every stable code, from the code registry (ftlang/codes/).
- docs/migrating.md: the key-by-key tables of `ftlang import`, from ftlang/importers/table.py.
- schema/plan.schema.json: exactly what `ftlang schema` prints.

    python scripts/gen_docs.py           # rewrite the files
    python scripts/gen_docs.py --check   # exit 1 (and name the files) when any is out of date

Torch-free: it imports only the compiler side of ftlang.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- BEGIN GENERATED: key tables (python scripts/gen_docs.py) -->"
END = "<!-- END GENERATED -->"

AREAS = [
    ("FT0", "Syntax (FT0xx)"), ("FT1", "Schema and types (FT1xx)"),
    ("FT2", "Names, references and paths (FT2xx)"), ("FT3", "Method rules (FT3xx)"),
    ("FT4", "Guidance warnings (FT4xx)"), ("FT5", "Resources (FT5xx)"), ("FT6", "Data (FT6xx)"),
    ("FT7", "Run and train (FT7xx)"), ("FT8", "Eval, gates, export, registry, serve (FT8xx)"),
    ("FT9", "Installation, import and internal errors (FT9xx)"),
]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str) and v and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        return json.dumps(v)
    return str(v)


def key_tables() -> str:
    from ftlang.semantic.schema import BLOCKS

    out: list[str] = []
    for b in BLOCKS:
        title = b.name.replace("method.", "method ")
        label = {"ident": " NAME", "str": ' "NAME"'}.get(b.label, "")
        if b.name == "data":
            label = " NAME = SOURCE"
        elif b.name in ("recipe", "model_card"):
            label = " NAME"
        out.append(f"### `{title}{label} {{ … }}`\n\n{b.doc[0].upper() + b.doc[1:]}.\n")
        if b.keys:
            out.append("| key | type | default | range / choices | meaning |")
            out.append("|---|---|---|---|---|")
            for k in b.keys:
                typ = k.type + (f" ({k.unit})" if k.unit else "")
                rng = k.range_text() or (" | ".join(k.enum) if k.enum else "")
                default = "required" if k.required else _value(k.default)
                out.append(f"| `{k.name}` | {typ} | {_md(default)} | {_md(rng)} | {_md(k.doc)} |")
            out.append("")
        extra = []
        if b.blocks:
            extra.append("nested blocks: " + ", ".join(f"`{n}`" for n in b.blocks))
        if b.statements:
            extra.append("statements: " + ", ".join(f"`{n}`" for n in b.statements))
        if extra:
            out.append("; ".join(extra).capitalize() + ".\n")
    out += step_tables()
    return "\n".join(out).rstrip() + "\n"


def step_tables() -> list[str]:
    """The pipeline steps and their arguments, from the plan's step models (ftlang/plan.py)."""
    from pydantic_core import PydanticUndefined

    from ftlang.plan import STEP_MODELS, AugmentOp

    out = ["### Pipeline steps `dataset NAME = SOURCE | step(...) | ...`\n",
           "| step | arguments (default) | meaning |", "|---|---|---|"]
    for op, model in {**STEP_MODELS, "augment op": AugmentOp}.items():
        fields = model.model_fields["args"].annotation.model_fields if op != "augment op" else \
            {k: v for k, v in model.model_fields.items() if k != "op"}
        args = []
        for name, info in fields.items():
            default = info.get_default(call_default_factory=True) if info.default_factory else info.default
            shown = "" if default is PydanticUndefined else f" ({_value(default) or 'optional'})"
            args.append(f"`{name}`{shown}" + (f": {info.description}" if info.description else ""))
        name = f"`{op}(...)`" if op != "augment op" else "inside `augment(...)`: " + ", ".join(
            f"`{o}(...)`" for o in model.model_fields["op"].annotation.__args__)
        out.append(f"| {name} | {_md('; '.join(args)) or '—'} | {_md(model.__doc__ or '')} |")
    return out + [""]


def _between(current: str, begin: str, body: str, name: str) -> str:
    """`current` with the text between `begin` and END replaced by `body` (the prose around it is kept)."""
    if begin not in current or END not in current:
        raise SystemExit(f"{name} lacks the markers {begin!r} … {END!r}")
    head, rest = current.split(begin, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{begin}\n\n{body}\n{END}{tail}"


def language_md(current: str) -> str:
    return _between(current, BEGIN, key_tables(), "docs/language.md")


MIGRATION_BEGIN = "<!-- BEGIN GENERATED: migration tables (python scripts/gen_docs.py) -->"


def migrating_md(current: str) -> str:
    from ftlang.importers.table import markdown

    return _between(current, MIGRATION_BEGIN, markdown(), "docs/migrating.md")


def all_codes() -> dict:
    """code → its declaration, from the one code registry (ftlang/codes/)."""
    from ftlang.codes import all_codes as registered

    return {c.code: c for c in registered()}


def diagnostics_md() -> str:
    codes = all_codes()
    out = ["# Diagnostics", "",
           "<!-- Generated by `python scripts/gen_docs.py` from the code registry (ftlang/codes/);",
           "     do not edit by hand. -->", "",
           "Every problem ftlang reports is a diagnostic with a stable code, a position (recipe `file:line:col`,",
           "or the data file's line), the source line with a caret, and a help line saying what to do.",
           "`ftlang explain CODE` prints the explanation below; `ftlang check --format json|github|sarif`",
           "gives the same diagnostics to tools. Codes never change meaning; retired codes are not reused.", ""]
    for prefix, title in AREAS:
        group = {c: v for c, v in codes.items() if c.startswith(prefix)}
        if not group:
            continue
        out += [f"## {title}", ""]
        for code, c in group.items():
            help_line = [f"Default help: {c.help}", ""] if c.help else []
            out += [f"### {code}: {c.title}", "", f"*{c.severity.value}, reported by the {c.stage.value} stage*", "",
                    c.explain.strip(), "", *help_line]
    return "\n".join(out).rstrip() + "\n"


def plan_schema() -> str:
    # byte-for-byte what `ftlang schema` prints
    from ftlang.plan import plan_json_schema

    return json.dumps(plan_json_schema(), indent=2) + "\n"


TARGETS: list[tuple[str, Callable[[str], str]]] = [
    ("docs/language.md", language_md),
    ("docs/diagnostics.md", lambda _: diagnostics_md()),
    ("docs/migrating.md", migrating_md),
    ("schema/plan.schema.json", lambda _: plan_schema()),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = ap.parse_args(argv)
    stale = []
    for rel, make in TARGETS:
        path = ROOT / rel
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        wanted = make(current)
        if wanted == current:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(wanted, encoding="utf-8")
            tmp.replace(path)
    if args.check and stale:
        print("out of date (run python scripts/gen_docs.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    for rel in stale:
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
