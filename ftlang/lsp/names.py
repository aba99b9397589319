"""Name tables the editor features share: cards (imported and stdlib), params, data and dataset names
in scope, and the short Markdown summaries hover and completion show for them."""

from __future__ import annotations

import re
from functools import cache

from ftlang.lsp.state import Analysis
from ftlang.semantic.cards import Card, total_params
from ftlang.semantic.units import human_count
from ftlang.syntax import ast


@cache
def stdlib_cards() -> dict[str, tuple[str, ast.ModelCard]]:
    """Every stdlib card name → (its import string, its node)."""
    from ftlang.resources import stdlib_dir
    from ftlang.semantic.resolve import resolve

    out: dict[str, tuple[str, ast.ModelCard]] = {}
    for f in sorted((stdlib_dir() / "models").glob("*.ft")):
        for name, node in resolve(f).cards.items():
            out.setdefault(name, (f"stdlib/models/{f.name}", node))
    return out


def card_of(node: ast.ModelCard, params=None) -> Card | None:
    from ftlang.semantic.models import card_from_node

    return card_from_node(node, params or {})[0]


def card_markdown(card: Card, title: str | None = None) -> str:
    kv = f", kv_heads {card.kv_heads}" if card.kv_heads != card.heads else ""
    lines = [f"**model card `{title or card.name}`** · {card.family} {card.arch}",
             f"hidden {card.hidden} · layers {card.layers} · heads {card.heads}{kv} · "
             f"intermediate {card.intermediate} · vocab {card.vocab}"
             + (f" · max_position {card.max_position}" if card.max_position else ""),
             f"**{human_count(total_params(card))} parameters** ({total_params(card):,})"]
    if card.aliases:
        lines.append("targets: " + ", ".join(f"`{k}`" for k in card.aliases) + " · modules: "
                     + ", ".join(f"`{m}`" for m in card.modules))
    return "\n\n".join(lines)


def cards_in_scope(a: Analysis | None) -> dict[str, ast.ModelCard]:
    program = a.program if a is not None else None
    return dict(program.cards) if program is not None else {}


def context_for(a: Analysis | None, recipe: str | None):
    """The RecipeContext of a recipe in the analysis, if the checker bound it."""
    if a is None or recipe is None:
        return None
    return a.contexts.get(recipe)


_DECL = re.compile(r"\b(data|dataset)\s+([A-Za-z_][A-Za-z0-9_]*)\s*=")


def data_names(a: Analysis | None, recipe: str | None, text: str) -> dict[str, str]:
    """Data source and dataset names in scope (name → "data" | "dataset"): the recipe's bound context
    (which includes what `extends` brings) plus what the current text declares, parsed or not."""
    out: dict[str, str] = {}
    ctx = context_for(a, recipe)
    if ctx is not None:
        out.update({n: "data" for n in ctx.data_nodes})
        out.update({n: "dataset" for n in ctx.dataset_nodes})
    for m in _DECL.finditer(text):
        out.setdefault(m.group(2), m.group(1))
    return out


def value_text(node: ast.Value) -> str:
    """A value as the user wrote it (numbers keep their spelling)."""
    from ftlang.syntax.format import inline

    return inline(node)


def method_estimate(ctx):
    """Trainable parameters and the memory breakdown of a bound recipe (None while its method,
    card or train block has errors)."""
    if ctx is None or ctx.card is None or ctx.method is None or ctx.train is None:
        return None
    from ftlang.semantic.resources import estimate

    return estimate(ctx.card, ctx.method, ctx.train, ctx.hardware, ctx.task)


def explain_markdown(code: str) -> str | None:
    """The text `ftlang explain CODE` prints, as Markdown."""
    from ftlang.codes import lookup

    doc = lookup(code)
    return None if doc is None else f"**{doc.code}** · {doc.title}\n\n{doc.explain}"
