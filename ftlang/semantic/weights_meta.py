"""A local model's layout read from its safetensors headers: the card of a family no layout in cards.py
describes (Falcon, BLOOM, GPT-J, a new architecture), without torch and without reading a weight.

A safetensors file starts with an 8-byte little-endian header length and a JSON header naming every
tensor with its shape. The blocks are the tensors under `<prefix>.<i>.`; block 0's 2-D `.weight`
tensors are its linear layers (nn.Linear stores them as [d_out, d_in]); the parameter total is the sum
over every tensor the files hold (a tied head is stored once, as transformers counts it).
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections import Counter
from pathlib import Path

from ftlang.plan import ModelSource
from ftlang.semantic.cards import Card, CardError, Linear, UnknownFamily, card_from_config, read_config
from ftlang.source import Span

INDEX = "model.safetensors.index.json"
_MAX_HEADER = 256 * 2**20  # a header larger than this is not a safetensors header
_BLOCK = re.compile(r"^(?P<prefix>.+?)\.(?P<index>\d+)\.(?P<rest>.+)$")
_ATTENTION = ("attn", "attention")


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files of a model folder: those its index names, else every *.safetensors."""
    index = directory / INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise CardError(f"cannot read {INDEX}: {e}") from e
        return [directory / n for n in names]
    return sorted(directory.glob("*.safetensors"))


def read_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, from the files' headers alone."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        try:
            with path.open("rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                if n > _MAX_HEADER:
                    raise CardError(f"{path.name} is not a safetensors file (header of {n:,} bytes)")
                header = json.loads(f.read(n))
        except (OSError, struct.error, ValueError, UnicodeDecodeError) as e:
            raise CardError(f"cannot read the header of {path.name}: {e}") from e
        if not isinstance(header, dict):
            raise CardError(f"{path.name}: the safetensors header is not a JSON object")
        for name, info in header.items():
            if name != "__metadata__" and isinstance(info, dict):
                shapes[name] = tuple(int(d) for d in info.get("shape", ()))
    return shapes


def _first(cfg: dict, *keys: str) -> int | None:
    for k in keys:
        if isinstance(cfg.get(k), (int, float)) and not isinstance(cfg.get(k), bool) and cfg[k] > 0:
            return int(cfg[k])
    return None


def _blocks(shapes: dict[str, tuple[int, ...]]) -> tuple[str, int]:
    """The prefix the transformer blocks sit under (the one with the most numbered children) and their count."""
    indices: dict[str, set[int]] = {}
    for name in shapes:
        m = _BLOCK.match(name)
        if m:
            indices.setdefault(m["prefix"], set()).add(int(m["index"]))
    if not indices:
        raise CardError("the safetensors files hold no numbered transformer blocks")
    prefix = max(indices, key=lambda p: (len(indices[p]), -len(p)))
    return prefix, len(indices[prefix])


def block_linears(shapes: dict[str, tuple[int, ...]], prefix: str) -> list[tuple[str, Linear]]:
    """(dotted path inside the block, (leaf, d_in, d_out, has_bias)) of block 0's 2-D weights, by path (files
    list tensors in no order a model defines)."""
    head = f"{prefix}.0."
    out = []
    for name, shape in shapes.items():
        if name.startswith(head) and name.endswith(".weight") and len(shape) == 2:
            path = name[len(head):-len(".weight")]
            out.append((path, (path.rsplit(".", 1)[-1], shape[1], shape[0], f"{head}{path}.bias" in shapes)))
    return sorted(out)


def card_from_weights(cfg: dict, directory: Path, source: ModelSource, span: Span | None = None) -> Card:
    """A card from config.json's dimensions and the layout the safetensors headers give."""
    files = weight_files(directory)
    if not files:
        raise CardError("no safetensors weights in the folder to read its layout from")
    shapes = read_shapes(files)
    prefix, layers = _blocks(shapes)
    linears = block_linears(shapes, prefix)
    if not linears:
        raise CardError(f"block `{prefix}.0` holds no linear layer")
    outside = [s for n, s in shapes.items() if not n.startswith(prefix + ".") and len(s) == 2]
    vocab = _first(cfg, "vocab_size", "n_vocab", "padded_vocab_size")
    if vocab is None and outside:
        vocab = max(s[0] for s in outside)
    rows = [s for s in outside if s[0] == vocab]
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model", "dim", "model_dim") or (rows[0][1] if rows else None)
    heads = _first(cfg, "num_attention_heads", "n_head", "num_heads", "n_heads", "n_head_q")
    if vocab is None or hidden is None or heads is None:
        missing = [k for k, v in (("vocab_size", vocab), ("hidden_size", hidden), ("num_attention_heads", heads))
                   if v is None]
        raise CardError(f"config.json gives no {', '.join(missing)}")
    kv = _first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
    if kv is None and cfg.get("multi_query") is True:
        kv = 1
    dims = Counter(max(i, o) for _, (_, i, o, _) in linears if max(i, o) != hidden)
    intermediate = (_first(cfg, "intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", "d_ff", "hidden_dim")
                    or (dims.most_common(1)[0][0] if dims else 4 * hidden))
    archs = [str(a) for a in cfg.get("architectures") or []]
    arch = "decoder" if not archs or any("CausalLM" in a or "LMHead" in a for a in archs) else "encoder"
    modules = tuple(dict.fromkeys(leaf for _, (leaf, *_rest) in linears))

    def attention_path(path: str) -> bool:
        return any(w in part for part in path.split(".") for w in _ATTENTION)

    # a leaf used on both paths (BERT's `dense`) is in both aliases, as in the family cards
    attention = tuple(dict.fromkeys(lin[0] for path, lin in linears if attention_path(path)))
    mlp = tuple(dict.fromkeys(lin[0] for path, lin in linears if not attention_path(path)))
    aliases = {"all_linear": modules, **({"attention": attention} if attention else {}), **({"mlp": mlp} if mlp else {})}
    return Card(name=None, source=source, family=str(cfg.get("model_type") or "custom"), hidden=hidden, layers=layers,
                heads=heads, kv_heads=kv or heads, intermediate=intermediate, vocab=vocab, arch=arch,
                head_dim=_first(cfg, "head_dim"),
                max_position=_first(cfg, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length"),
                tie_embeddings=len(rows) < 2, modules=modules, aliases=aliases, span=span,
                linears=tuple(lin for _, lin in linears), params=sum(math.prod(s) for s in shapes.values()))


def card_from_folder(folder: Path, source: ModelSource, span: Span | None = None) -> Card:
    """A local model folder's card: from config.json by family, else (a model_type no family covers) from
    the layout its safetensors headers give."""
    cfg = read_config(folder)
    try:
        return card_from_config(cfg, source, span)
    except UnknownFamily as unknown:
        try:
            return card_from_weights(cfg, folder, source, span)
        except CardError as e:
            raise CardError(f"{unknown}, and its weights do not give the layout: {e}") from None
