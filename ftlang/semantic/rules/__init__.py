"""The rule registry: one small function per rule, registered with its stable code and explain text.

    @rule("FT301", "qlora needs a 4-bit quant type", explain="...")
    def qlora_quant(ctx: RecipeContext) -> Iterable[Diagnostic]: ...

Adding a rule touches one file. Codes the binder and type checker report directly (unknown keys,
paths, ...) are documented with `document(code, title, explain)` so `ftlang explain CODE` knows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    _load()
    code = code.upper()
    doc = CODES.get(code)
    if doc is None:
        try:
            from ftlang.syntax.parser import SYNTAX_CODES
        except ImportError:
            return None
        text = SYNTAX_CODES.get(code)
        if text:
            return CodeDoc(code, text, f"{text}.\n\nA syntax error: the file does not follow the ftlang grammar. "
                           "The diagnostic points at the first token that does not fit and lists what was expected.")
    return doc


def all_codes() -> list[CodeDoc]:
    _load()
    return sorted(CODES.values(), key=lambda d: d.code)
