"""A Card as `model_card` source text: what `ftlang card org/name` writes into the project.

The written card is an ordinary `.ft` file, so `check` reads it offline and reproducibly (the network is
touched once, by the command, for config.json alone).
"""

from __future__ import annotations

import re

from ftlang.semantic.cards import Card


def card_name(hub_id: str) -> str:
    """An identifier for a hub id's card: NousResearch/Meta-Llama-3-8B → meta_llama_3_8b."""
    name = re.sub(r"[^a-z0-9]+", "_", hub_id.rsplit("/", 1)[-1].lower()).strip("_")
    return name if name and name[0].isalpha() else f"m_{name}"


def _list(items) -> str:
    return "[" + ", ".join(items) + "]"


def card_text(card: Card, name: str, note: str) -> str:
    """The `model_card NAME { ... }` block for a card derived from a config.json (note: where it came from)."""
    src = card.source
    args = f'"{src.path}"' + (f', revision = "{src.revision}"' if src.revision else "")
    lines = [f"# {note}", f"model_card {name} {{", f"  source = hf({args})", f"  family = {card.family}"]
    if card.arch != "decoder":
        lines.append(f"  arch = {card.arch}")
    for key in ("hidden", "layers", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "max_position"):
        value = getattr(card, key)
        if value is not None:
            lines.append(f"  {key} = {value}")
    lines.append(f"  tie_embeddings = {str(card.tie_embeddings).lower()}")
    if card.qkv_bias:
        lines.append("  qkv_bias = true")
    lines.append(f"  modules = {_list(card.modules)}")
    lines += [f"  alias {alias} = {_list(mods)}" for alias, mods in card.aliases.items()]
    return "\n".join(lines) + "\n}\n"
