"""Model cards: the dimensions the checker needs (no weights, no torch).

A card comes from a `model_card` block (the stdlib writes them in ftlang) or is derived from a local
model's `config.json`. `layer_linears` gives every linear layer's (d_in, d_out) per family; the
resource estimator counts parameters from it, so LoRA counts stay exact for GQA and fused layouts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ftlang.plan import ModelSource
from ftlang.source import Span

#: families whose decoder layers follow Llama's layout (q/k/v/o + gate/up/down, RMSNorm)
LLAMA_LIKE = frozenset({"llama", "mistral", "qwen2", "gemma2"})

#: default module names and aliases per family, used for cards derived from config.json
FAMILY_MODULES: dict[str, tuple[str, ...]] = {
    **{f: ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj") for f in LLAMA_LIKE},
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "bert": ("query", "key", "value", "dense"),
}
FAMILY_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    **{f: {"attention": ("q_proj", "k_proj", "v_proj", "o_proj"), "mlp": ("gate_proj", "up_proj", "down_proj")}
       for f in LLAMA_LIKE},
    "phi3": {"attention": ("qkv_proj", "o_proj"), "mlp": ("gate_up_proj", "down_proj")},
    "gpt2": {"attention": ("c_attn", "c_proj"), "mlp": ("c_fc", "c_proj")},
    "bert": {"attention": ("query", "key", "value", "dense"), "mlp": ("dense",)},
}
#: modules that sit on the feed-forward path (IA3 scales their input, not their output)
FEEDFORWARD = frozenset({"gate_proj", "up_proj", "down_proj", "gate_up_proj", "c_fc", "fc1", "fc2"})


@dataclass(frozen=True)
class Card:
    name: str | None
    source: ModelSource
    family: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    arch: str = "decoder"
    head_dim: int | None = None  # when it is not hidden // heads (gemma2: 256)
    max_position: int | None = None
    tie_embeddings: bool = False
    qkv_bias: bool = False
    type_vocab: int = 2  # bert token types
    modules: tuple[str, ...] = ()
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    template: str | None = None
    span: Span | None = None

    @property
    def dim_head(self) -> int:
        return self.head_dim or self.hidden // max(self.heads, 1)

    @property
    def q_dim(self) -> int:
        return self.heads * self.dim_head

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.dim_head

    def expand(self, names: list[str]) -> list[str]:
        """Targets as written (module names or aliases) → unique module names, in order."""
        out: list[str] = []
        for n in names:
            for m in self.aliases.get(n, (n,)):
                if m not in out:
                    out.append(m)
        return out


def layer_linears(card: Card) -> list[tuple[str, int, int, bool]]:
    """(leaf name, d_in, d_out, has_bias) of every linear layer in ONE transformer block."""
    h, i = card.hidden, card.intermediate
    fam = card.family
    if fam == "phi3":
        return [("qkv_proj", h, card.q_dim + 2 * card.kv_dim, False), ("o_proj", card.q_dim, h, False),
                ("gate_up_proj", h, 2 * i, False), ("down_proj", i, h, False)]
    if fam == "gpt2":  # Conv1D, all with bias; c_proj occurs twice (attention output, MLP output)
        return [("c_attn", h, 3 * h, True), ("c_proj", h, h, True), ("c_fc", h, i, True), ("c_proj", i, h, True)]
    if fam == "bert":
        return [("query", h, h, True), ("key", h, h, True), ("value", h, h, True), ("dense", h, h, True),
                ("dense", h, i, True), ("dense", i, h, True)]
    b = card.qkv_bias
    return [("q_proj", h, card.q_dim, b), ("k_proj", h, card.kv_dim, b), ("v_proj", h, card.kv_dim, b),
            ("o_proj", card.q_dim, h, False), ("gate_proj", h, i, False), ("up_proj", h, i, False),
            ("down_proj", i, h, False)]


def extra_linears(card: Card) -> list[tuple[str, int, int, bool]]:
    """Linear layers outside the blocks that a leaf-name target also matches (BERT's pooler.dense)."""
    if card.family == "bert":
        return [("dense", card.hidden, card.hidden, True)]
    return []


def _norm_params(card: Card) -> tuple[int, int]:
    """(per layer, final) normalisation parameters."""
    h = card.hidden
    if card.family in ("gpt2", "bert"):  # LayerNorm with bias
        return 2 * 2 * h, (2 * h if card.family == "gpt2" else 0)
    per_layer = 4 * h if card.family == "gemma2" else 2 * h  # gemma2: pre+post norms around attn & mlp
    return per_layer, h


def linear_params(card: Card) -> int:
    """Weights of the linear layers inside the blocks (what bitsandbytes quantizes), biases excluded."""
    per = sum(d_in * d_out for _, d_in, d_out, _ in layer_linears(card))
    return per * card.layers


def total_params(card: Card) -> int:
    """Every parameter: embeddings (tied or not), attention (GQA-aware), MLP, norms, biases."""
    h = card.hidden
    per_layer = sum(d_in * d_out + (d_out if bias else 0) for _, d_in, d_out, bias in layer_linears(card))
    norm_layer, norm_final = _norm_params(card)
    blocks = card.layers * (per_layer + norm_layer)
    embed = card.vocab * h
    if card.family == "gpt2":
        embed += (card.max_position or 1024) * h
    if card.family == "bert":  # word + position + token type embeddings, embedding LayerNorm, pooler
        embed += (card.max_position or 512) * h + card.type_vocab * h + 2 * h
        embed += sum(d_in * d_out + d_out for _, d_in, d_out, _ in extra_linears(card))
    head = 0 if (card.tie_embeddings or card.arch == "encoder") else card.vocab * h
    return embed + blocks + norm_final + head


def targets_count(card: Card, targets: list[str], per_matrix) -> int:
    """Σ per_matrix(name, d_in, d_out) over the card's linears named in `targets` (block ones × layers)."""
    wanted = set(targets)
    n = 0
    for name, d_in, d_out, _ in layer_linears(card):
        if name in wanted:
            n += per_matrix(name, d_in, d_out) * card.layers
    for name, d_in, d_out, _ in extra_linears(card):
        if name in wanted:
            n += per_matrix(name, d_in, d_out)
    return n


#: embedding and output-head leaf names across families: `modules_to_save` trains them in full
EMBEDDING_MODULES = frozenset({"embed_tokens", "wte", "word_embeddings"})
HEAD_MODULES = frozenset({"lm_head"})


def saved_modules_params(card: Card, names: list[str]) -> int:
    """Parameters of PEFT `modules_to_save`: the embeddings, the LM head, or whole linear layers of the card."""
    n = 0
    for name in set(names):
        if name in EMBEDDING_MODULES or name in HEAD_MODULES:
            n += card.vocab * card.hidden
        else:
            n += targets_count(card, [name], lambda _n, i, o: i * o)
    return n


def card_from_plan(model) -> Card:
    """The card a plan's `model` section was built from (the executor re-estimates from it)."""
    return Card(name=model.card, source=model.source, family=model.family, hidden=model.hidden, layers=model.layers,
                heads=model.heads, kv_heads=model.kv_heads, intermediate=model.intermediate, vocab=model.vocab,
                arch=model.arch, head_dim=model.head_dim, max_position=model.max_position,
                tie_embeddings=model.tie_embeddings, qkv_bias=model.qkv_bias, modules=tuple(model.modules),
                aliases={k: tuple(v) for k, v in model.aliases.items()}, template=model.template)


# ---------------------------------------------------------------------------- config.json


class CardError(Exception):
    """A config.json the checker cannot turn into a card; the caller positions it."""


def _get(cfg: dict, *keys: str, default=None):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    if default is None:
        raise CardError(f"config.json has no {keys[0]!r}")
    return default


def card_from_config(cfg: dict, source: ModelSource, span: Span | None = None) -> Card:
    """Derive a card from a transformers config.json (plain JSON; no transformers import)."""
    mtype = str(cfg.get("model_type", ""))
    family = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "gemma2": "gemma2", "phi3": "phi3",
              "gpt2": "gpt2", "bert": "bert"}.get(mtype)
    if family is None:
        raise CardError(f"model_type {mtype!r} is not one ftlang knows "
                        "(llama, mistral, qwen2, gemma2, phi3, gpt2, bert)")
    try:
        if family == "gpt2":
            h = int(_get(cfg, "n_embd", "hidden_size"))
            heads = int(_get(cfg, "n_head", "num_attention_heads"))
            kw = dict(hidden=h, layers=int(_get(cfg, "n_layer", "num_hidden_layers")), heads=heads,
                      kv_heads=heads, intermediate=int(_get(cfg, "n_inner", default=4 * h)),
                      vocab=int(_get(cfg, "vocab_size")), max_position=int(_get(cfg, "n_positions", default=1024)),
                      tie_embeddings=bool(cfg.get("tie_word_embeddings", True)))
        else:
            heads = int(_get(cfg, "num_attention_heads"))
            kw = dict(hidden=int(_get(cfg, "hidden_size")), layers=int(_get(cfg, "num_hidden_layers")),
                      heads=heads, kv_heads=int(_get(cfg, "num_key_value_heads", default=heads)),
                      intermediate=int(_get(cfg, "intermediate_size")), vocab=int(_get(cfg, "vocab_size")),
                      max_position=cfg.get("max_position_embeddings"),
                      tie_embeddings=bool(cfg.get("tie_word_embeddings", family == "gemma2")))
            if cfg.get("head_dim"):
                kw["head_dim"] = int(cfg["head_dim"])
            if family == "bert":
                kw.update(arch="encoder", tie_embeddings=False, type_vocab=int(cfg.get("type_vocab_size", 2)))
            kw["qkv_bias"] = family == "qwen2" or bool(cfg.get("attention_bias", False))
    except (TypeError, ValueError) as e:
        raise CardError(f"config.json has a malformed dimension: {e}") from e
    modules = FAMILY_MODULES[family]
    aliases = {**FAMILY_ALIASES[family], "all_linear": modules}
    return Card(name=None, source=source, family=family, modules=modules, aliases=aliases, span=span, **kw)


def read_config(directory: Path) -> dict:
    path = directory / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CardError(f"{path.name} not found in the model directory") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CardError(f"cannot read config.json: {e}") from e
    if not isinstance(data, dict):
        raise CardError("config.json is not a JSON object")
    return data
