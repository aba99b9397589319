"""Model cards: the dimensions the checker needs (no weights, no torch).

A card comes from a `model_card` block (the stdlib writes them in ftlang) or is derived from a local
model's `config.json`. `layer_linears` gives every linear layer's (d_in, d_out) per family; the
resource estimator counts parameters from it, so LoRA counts stay exact for GQA and fused layouts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ftlang.plan import ModelSource
from ftlang.source import Span

Linear = tuple[str, int, int, bool]  # (leaf name, d_in, d_out, has_bias)


@dataclass(frozen=True)
class Layout:
    """How a block's linear layers follow from a card's dimensions, and how they group."""

    linears: Callable[[Card], list[Linear]]
    attention: tuple[str, ...]
    mlp: tuple[str, ...]
    gated: bool = False  # the MLP multiplies a gate (SwiGLU/GeGLU): more activations kept per token

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.attention + self.mlp))


def _gated(c: Card) -> list[Linear]:
    h, i, b = c.hidden, c.intermediate, c.qkv_bias
    return [("q_proj", h, c.q_dim, b), ("k_proj", h, c.kv_dim, b), ("v_proj", h, c.kv_dim, b),
            ("o_proj", c.q_dim, h, False), ("gate_proj", h, i, False), ("up_proj", h, i, False),
            ("down_proj", i, h, False)]


def _phi3(c: Card) -> list[Linear]:
    h, i = c.hidden, c.intermediate
    return [("qkv_proj", h, c.q_dim + 2 * c.kv_dim, False), ("o_proj", c.q_dim, h, False),
            ("gate_up_proj", h, 2 * i, False), ("down_proj", i, h, False)]


def _gpt2(c: Card) -> list[Linear]:  # Conv1D, all with bias; c_proj occurs twice (attention output, MLP output)
    h, i = c.hidden, c.intermediate
    return [("c_attn", h, 3 * h, True), ("c_proj", h, h, True), ("c_fc", h, i, True), ("c_proj", i, h, True)]


def _bert(c: Card) -> list[Linear]:
    h, i = c.hidden, c.intermediate
    return [("query", h, h, True), ("key", h, h, True), ("value", h, h, True), ("dense", h, h, True),
            ("dense", h, i, True), ("dense", i, h, True)]


def _neox(c: Card) -> list[Linear]:  # GPT-NeoX (Pythia): fused q/k/v, every linear with a bias
    h, i = c.hidden, c.intermediate
    return [("query_key_value", h, c.q_dim + 2 * c.kv_dim, True), ("dense", c.q_dim, h, True),
            ("dense_h_to_4h", h, i, True), ("dense_4h_to_h", i, h, True)]


def _opt(c: Card) -> list[Linear]:
    h, i = c.hidden, c.intermediate
    return [("q_proj", h, c.q_dim, True), ("k_proj", h, c.kv_dim, True), ("v_proj", h, c.kv_dim, True),
            ("out_proj", c.q_dim, h, True), ("fc1", h, i, True), ("fc2", i, h, True)]


def _phi(c: Card) -> list[Linear]:  # Phi-1/1.5/2
    h, i = c.hidden, c.intermediate
    return [("q_proj", h, c.q_dim, True), ("k_proj", h, c.kv_dim, True), ("v_proj", h, c.kv_dim, True),
            ("dense", c.q_dim, h, True), ("fc1", h, i, True), ("fc2", i, h, True)]


def _starcoder2(c: Card) -> list[Linear]:  # qkv_bias: config.json's use_bias, for every linear
    h, i, b = c.hidden, c.intermediate, c.qkv_bias
    return [("q_proj", h, c.q_dim, b), ("k_proj", h, c.kv_dim, b), ("v_proj", h, c.kv_dim, b),
            ("o_proj", c.q_dim, h, b), ("c_fc", h, i, b), ("c_proj", i, h, b)]


_QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")
LAYOUTS: dict[str, Layout] = {
    "gated": Layout(_gated, _QKVO, ("gate_proj", "up_proj", "down_proj"), gated=True),
    "phi3": Layout(_phi3, ("qkv_proj", "o_proj"), ("gate_up_proj", "down_proj"), gated=True),
    "gpt2": Layout(_gpt2, ("c_attn", "c_proj"), ("c_fc", "c_proj")),
    "bert": Layout(_bert, ("query", "key", "value", "dense"), ("dense",)),
    "neox": Layout(_neox, ("query_key_value", "dense"), ("dense_h_to_4h", "dense_4h_to_h")),
    "opt": Layout(_opt, ("q_proj", "k_proj", "v_proj", "out_proj"), ("fc1", "fc2")),
    "phi": Layout(_phi, ("q_proj", "k_proj", "v_proj", "dense"), ("fc1", "fc2")),
    "starcoder2": Layout(_starcoder2, _QKVO, ("c_fc", "c_proj")),
}


@dataclass(frozen=True)
class Family:
    """An architecture family, declared once: its block layout, the config.json `model_type`s it covers
    and what those configs leave unsaid. Cards from config.json, GGUF headers and `ftlang card`, and the
    `model_card { family }` enum all read FAMILIES."""

    layout: str
    model_types: tuple[str, ...]
    norm: str = "rms"  # "rms", or "layer": LayerNorm, with a bias
    norms: int = 2  # normalisations per block
    qk_norm: str = ""  # "head": norms over each q/k head (qwen3, gemma3); "proj": over the projections (olmo2)
    tie: bool = False  # tie_word_embeddings when config.json does not say
    bias: bool = False  # the attention projections' bias when config.json does not say
    head_bias: bool = False  # the LM head has a bias (phi)
    positions: int | None = None  # learned position embeddings: rows beyond max_position (gpt2: 0, opt: 2)
    #: the head AutoModelForSequenceClassification adds: "score" (h→labels, no bias: decoders), "linear"
    #: (h→labels: BERT, after its pooler) or "dense" (h→h, then h→labels: RoBERTa, which has no pooler then)
    classifier: str = "score"


FAMILIES: dict[str, Family] = {
    "llama": Family("gated", ("llama",)),
    "mistral": Family("gated", ("mistral",)),
    "qwen2": Family("gated", ("qwen2",), bias=True),
    "qwen3": Family("gated", ("qwen3",), qk_norm="head"),
    "gemma": Family("gated", ("gemma",), tie=True),
    "gemma2": Family("gated", ("gemma2",), norms=4, tie=True),
    "gemma3": Family("gated", ("gemma3_text",), norms=4, qk_norm="head", tie=True),
    "olmo2": Family("gated", ("olmo2",), qk_norm="proj"),
    "granite": Family("gated", ("granite",)),
    "stablelm": Family("gated", ("stablelm",), norm="layer"),
    "smollm3": Family("gated", ("smollm3",)),
    "phi3": Family("phi3", ("phi3",)),
    "phi": Family("phi", ("phi",), norm="layer", norms=1, head_bias=True),
    "gpt2": Family("gpt2", ("gpt2",), norm="layer", tie=True, positions=0),
    "gpt_neox": Family("neox", ("gpt_neox",), norm="layer"),
    "opt": Family("opt", ("opt",), norm="layer", tie=True, positions=2),
    "starcoder2": Family("starcoder2", ("starcoder2",), norm="layer", tie=True, bias=True),
    "bert": Family("bert", ("bert",), norm="layer", classifier="linear"),
    "roberta": Family("bert", ("roberta", "xlm-roberta"), norm="layer", classifier="dense"),
}
#: config.json model_type → family
MODEL_TYPES: dict[str, str] = {t: name for name, f in FAMILIES.items() for t in f.model_types}


def family_modules(family: str) -> tuple[str, ...]:
    return LAYOUTS[FAMILIES[family].layout].modules


def family_aliases(family: str) -> dict[str, tuple[str, ...]]:
    """attention, mlp and all_linear: the target aliases of a card derived for this family."""
    lay = LAYOUTS[FAMILIES[family].layout]
    return {"attention": lay.attention, "mlp": lay.mlp, "all_linear": lay.modules}


#: modules that sit on the feed-forward path (IA3 scales their input, not their output)
FEEDFORWARD = frozenset(m for lay in LAYOUTS.values() for m in lay.mlp
                        if m not in lay.attention)


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
    #: a family no layout describes: one block's linears and the parameter total, read from the weights
    linears: tuple[Linear, ...] = ()
    params: int | None = None

    @property
    def gated_mlp(self) -> bool:
        """The MLP multiplies a gate (SwiGLU/GeGLU, or fused gate_up): it keeps 4i activations per token."""
        if self.linears:
            ups = [o for _, i, o, _ in self.linears if i == self.hidden and o in (self.intermediate, 2 * self.intermediate)]
            return len(ups) >= 2 or 2 * self.intermediate in ups
        return LAYOUTS[FAMILIES[self.family].layout].gated

    @property
    def feedforward(self) -> frozenset[str]:
        """Module names on the feed-forward path (IA3 scales their input): the card's `mlp` alias less its
        attention modules (BERT's `dense` is both), or the families' shared names when it has no `mlp` alias."""
        if "mlp" not in self.aliases:
            return FEEDFORWARD
        return frozenset(self.aliases["mlp"]) - frozenset(self.aliases.get("attention", ()))

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


def layer_linears(card: Card) -> list[Linear]:
    """(leaf name, d_in, d_out, has_bias) of every linear layer in ONE transformer block."""
    if card.linears:
        return list(card.linears)
    return LAYOUTS[FAMILIES[card.family].layout].linears(card)


def extra_linears(card: Card) -> list[tuple[str, int, int, bool]]:
    """Linear layers outside the blocks that a leaf-name target also matches (BERT's pooler.dense; an
    encoder is always loaded to classify, and RoBERTa's classifier model has no pooler)."""
    if card.family == "bert":
        return [("dense", card.hidden, card.hidden, True)]
    return []


def classifier_params(card: Card, labels: int) -> int:
    """Parameters of the sequence-classification head (PEFT's SEQ_CLS task trains it in full)."""
    fam = FAMILIES.get(card.family)  # None: a card read from the weights
    kind = fam.classifier if fam else ("linear" if card.arch == "encoder" else "score")
    h = card.hidden
    return {"score": h * labels, "linear": h * labels + labels, "dense": h * h + h + h * labels + labels}[kind]


def _norm_params(card: Card) -> tuple[int, int]:
    """(per layer, final) normalisation parameters."""
    fam = FAMILIES[card.family]
    size = card.hidden * (2 if fam.norm == "layer" else 1)  # LayerNorm: weight and bias
    per_layer = fam.norms * size
    if fam.qk_norm == "head":
        per_layer += 2 * card.dim_head
    elif fam.qk_norm == "proj":
        per_layer += card.q_dim + card.kv_dim
    return per_layer, (0 if card.arch == "encoder" else size)


def linear_params(card: Card) -> int:
    """Weights of the linear layers inside the blocks (what bitsandbytes quantizes), biases excluded."""
    per = sum(d_in * d_out for _, d_in, d_out, _ in layer_linears(card))
    return per * card.layers


def total_params(card: Card) -> int:
    """Every parameter: embeddings (tied or not), attention (GQA-aware), MLP, norms, biases."""
    if card.params:
        return card.params  # counted from the weights' own header
    h = card.hidden
    fam = FAMILIES[card.family]
    per_layer = sum(d_in * d_out + (d_out if bias else 0) for _, d_in, d_out, bias in layer_linears(card))
    norm_layer, norm_final = _norm_params(card)
    blocks = card.layers * (per_layer + norm_layer)
    embed = card.vocab * h
    if fam.positions is not None:
        embed += ((card.max_position or 1024) + fam.positions) * h
    if fam.layout == "bert":  # word + position + token type embeddings, embedding LayerNorm, pooler
        embed += (card.max_position or 512) * h + card.type_vocab * h + 2 * h
        embed += sum(d_in * d_out + d_out for _, d_in, d_out, _ in extra_linears(card))
    head = 0 if (card.tie_embeddings or card.arch == "encoder") else card.vocab * h + (card.vocab if fam.head_bias else 0)
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
                aliases={k: tuple(v) for k, v in model.aliases.items()}, template=model.template,
                linears=tuple(tuple(x) for x in model.linears or ()), params=model.params)


# ---------------------------------------------------------------------------- config.json


class CardError(Exception):
    """A config.json the checker cannot turn into a card; the caller positions it."""


class UnknownFamily(CardError):
    """config.json names a model_type no family covers (a local folder's weights may still describe it)."""


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
    family = MODEL_TYPES.get(mtype)
    if family is None:
        raise UnknownFamily(f"model_type {mtype!r} is not one ftlang knows ({', '.join(sorted(MODEL_TYPES))})")
    fam = FAMILIES[family]
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
                      intermediate=int(_get(cfg, "intermediate_size", "ffn_dim")), vocab=int(_get(cfg, "vocab_size")),
                      max_position=cfg.get("max_position_embeddings"),
                      tie_embeddings=bool(cfg.get("tie_word_embeddings", fam.tie)))
            if cfg.get("head_dim"):
                kw["head_dim"] = int(cfg["head_dim"])
            if fam.layout == "bert":
                kw.update(arch="encoder", tie_embeddings=False, type_vocab=int(cfg.get("type_vocab_size", 2)))
            kw["qkv_bias"] = bool(cfg.get("attention_bias", cfg.get("use_bias", cfg.get("use_qkv_bias", fam.bias))))
    except (TypeError, ValueError) as e:
        raise CardError(f"config.json has a malformed dimension: {e}") from e
    return Card(name=None, source=source, family=family, modules=family_modules(family),
                aliases=family_aliases(family), span=span, **kw)


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
