"""The model of an imported config: a stdlib card when one describes it, else `hf("org/name")`.

A hub id that differs from a stdlib card's only by an instruct/chat suffix (`meta-llama/Llama-3.1-8B-Instruct`
against the card for `meta-llama/Llama-3.1-8B`) has the same dimensions: the recipe gets a copy of that
card with its own source, so `check` estimates it and `run` loads the weights the config named.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from ftlang.importers.common import Draft, identifier, quote

#: how `ftlang import` picks the model (docs/migrating.md's row for the model key of each tool)
MODEL_DOC = ("`model`: the stdlib card with that hub id (an `-Instruct` variant gets a copy of the card), else "
             "`hf(\"…\")`; a local path is `local(\"…\")`")
_IDENT = re.compile(r"^[a-z0-9_]+$")
_CARD = re.compile(r"^model_card (\w+) \{\n(.*?)^\}", re.M | re.S)
_SOURCE = re.compile(r'source\s*=\s*hf\("([^"]+)"\)')
_VARIANT = re.compile(r"[-_](instruct|chat|it|hf|base)\b", re.I)


@cache
def stdlib_cards() -> dict[str, tuple[str, str, str | None]]:
    """card name → (stdlib import path, card text, hub id or None), read from the shipped stdlib."""
    from ftlang.resources import stdlib_dir

    out: dict[str, tuple[str, str, str | None]] = {}
    for f in sorted((stdlib_dir() / "models").glob("*.ft")):
        for m in _CARD.finditer(f.read_text(encoding="utf-8")):
            src = _SOURCE.search(m.group(2))
            out[m.group(1)] = (f"stdlib/models/{f.name}", m.group(0), src.group(1) if src else None)
    return out


def _norm(hub_id: str) -> str:
    """The model's name without org and variant: re-uploads (`NousResearch/Meta-Llama-3.1-8B`) and instruct/chat
    variants have the dimensions of the base model's card."""
    name = hub_id.lower().rpartition("/")[2]
    name = re.sub(r"^meta-", "", name)  # `Meta-Llama-3-8B` is Meta's older spelling of `Llama-3-8B`
    return _VARIANT.sub("", name)


def _use_card(d: Draft, card: str) -> None:
    d.imports.append(stdlib_cards()[card][0])
    d.model = card


def use_card_name(d: Draft, card: str) -> bool:
    if card not in stdlib_cards():
        return False
    _use_card(d, card)
    return True


def use_hub_model(d: Draft, hub_id: str) -> None:
    cards = stdlib_cards()
    for card, (_, _, src) in cards.items():
        if src is not None and src.lower() == hub_id.lower():
            _use_card(d, card)
            return
    for card, (_, text, src) in cards.items():
        if src is not None and _norm(src) == _norm(hub_id):
            variant = "_".join(m.group(1).lower() for m in _VARIANT.finditer(hub_id.rpartition("/")[2]))
            name = identifier(f"{card}_{variant or hub_id.partition('/')[0]}")
            body = _SOURCE.sub(f"source = hf({quote(hub_id)})", text, count=1)
            d.cards.append(f"# {name}: the stdlib card {card} (same dimensions), loading {hub_id}\n"
                           + body.replace(f"model_card {card} ", f"model_card {name} ", 1))
            d.model = name
            return
    d.model = f"hf({quote(hub_id)})"
    d.todo.append(f"no stdlib card describes {hub_id}: `ftlang card {hub_id}` writes one into the project (online, "
                  "config.json only), or `check` reads config.json from the Hugging Face cache (FT212 until then)")


def use_local_model(d: Draft, path: str) -> None:
    d.model = f"local({quote(path)})"


def use_template(d: Draft, key: str, value: object) -> None:
    """A chat template ftlang ships (stdlib/templates/<name>.jinja, in ftlang's spelling) → `template = "…"`."""
    from ftlang.importers.common import word
    from ftlang.resources import stdlib_dir

    w = word(value)
    if _IDENT.match(w) and (Path(stdlib_dir()) / "templates" / f"{w}.jinja").is_file():
        d.set("train", "template", quote(w))
        d.done(key)
    else:
        d.skip(key, value, "no stdlib chat template of that name: the model card's (else the tokenizer's) is used")
