"""The rule registry: one small function per rule, registered with its stable code and explain text.

    @rule("FT301", "qlora needs a 4-bit quant type", explain="...")
    def qlora_quant(ctx: RecipeContext) -> Iterable[Diagnostic]: ...

Adding a rule touches one file. Codes the binder and type checker report directly (unknown keys,
paths, ...) are documented with `document(code, title, explain)` so `ftlang explain CODE` knows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from ftlang.diagnostics import Diagnostic, error

if TYPE_CHECKING:
    from ftlang.semantic.build import RecipeContext

RuleFn = Callable[["RecipeContext"], Iterable[Diagnostic]]


@dataclass(frozen=True)
class CodeDoc:
    code: str
    title: str
    explain: str
    fn: RuleFn | None = None


RULES: list[CodeDoc] = []
CODES: dict[str, CodeDoc] = {}


def rule(code: str, title: str, *, explain: str) -> Callable[[RuleFn], RuleFn]:
    def deco(fn: RuleFn) -> RuleFn:
        doc = CodeDoc(code, title, explain.strip(), fn)
        RULES.append(doc)
        CODES.setdefault(code, doc)
        return fn

    return deco


def document(code: str, title: str, explain: str) -> None:
    CODES.setdefault(code, CodeDoc(code, title, explain.strip()))


def _load() -> None:
    from ftlang.semantic.rules import codes, guidance, methods, references, resources  # noqa: F401


def run_rules(ctx: RecipeContext) -> list[Diagnostic]:
    _load()
    out: list[Diagnostic] = []
    for r in RULES:
        try:
            out.extend(r.fn(ctx))
        except Exception as e:  # noqa: BLE001 - a broken rule must not hide the other diagnostics
            out.append(error("FT999", f"internal error in rule {r.code}: {type(e).__name__}: {e}",
                             ctx.bound.node.name_span, "this is a bug in ftlang; please report it"))
    return out


def explain(code: str) -> CodeDoc | None:
    """The explanation of any stable code: rules, the checker's own codes, syntax codes, and the
    `CODES` tables of the other stages (`ftlang/**/codes.py`, torch-free by convention)."""
    return _other_codes().get(code.upper()) if code.upper() not in _codes() else _codes()[code.upper()]


def _codes() -> dict[str, CodeDoc]:
    _load()
    return CODES


@cache
def _other_codes() -> dict[str, CodeDoc]:
    import importlib
    from pathlib import Path

    out: dict[str, CodeDoc] = {}
    try:
        from ftlang.syntax.parser import SYNTAX_CODES

        for code, text in SYNTAX_CODES.items():
            title, _, rest = text.partition(": ")
            out[code] = CodeDoc(code, title.rstrip("."), (rest or text) + "\n\nA syntax error: the file does not "
                                "follow the ftlang grammar; the diagnostic points at the first token that does not fit.")
    except ImportError:
        pass
    package = Path(__file__).resolve().parents[2]
    for path in sorted(package.rglob("codes.py")):
        module = "ftlang." + ".".join(path.relative_to(package).with_suffix("").parts)
        if module.startswith("ftlang.semantic."):
            continue
        try:
            table = getattr(importlib.import_module(module), "CODES", None)
        except ImportError:
            continue
        for code, text in (table or {}).items():
            if isinstance(text, str):
                out.setdefault(code, CodeDoc(code, text.split(": ")[0].split(". ")[0].rstrip("."), text))
    return out


def all_codes(everything: bool = False) -> list[CodeDoc]:
    """The checker's codes (rules and documented codes); with everything=True every stage's too."""
    _load()
    table = {**_other_codes(), **CODES} if everything else CODES
    return sorted(table.values(), key=lambda d: d.code)
