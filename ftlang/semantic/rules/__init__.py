"""The checker's rules (one module per theme), run over a bound recipe; see registry.py for `@rule`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftlang.diagnostics import Diagnostic, error
from ftlang.semantic.rules import guidance, methods, references, resources  # noqa: F401 - they register
from ftlang.semantic.rules.registry import RULES

if TYPE_CHECKING:
    from ftlang.semantic.context import RecipeContext


def run_rules(ctx: RecipeContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for r in RULES:
        try:
            out.extend(r.fn(ctx))
        except Exception as e:  # noqa: BLE001 - a broken rule must not hide the other diagnostics
            out.append(error("FT999", f"internal error in rule {r.code}: {type(e).__name__}: {e}",
                             ctx.bound.node.name_span, "this is a bug in ftlang; please report it"))
    return out
