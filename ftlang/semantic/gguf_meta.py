"""Read a GGUF file's header (metadata and tensor names) without the gguf package, numpy or torch.

Layout (GGUF v2/v3, little-endian): magic "GGUF", uint32 version, uint64 tensor count, uint64 KV
count, then KV pairs (string key, uint32 type, value), then tensor infos (string name, uint32
n_dims, uint64 dims[n], uint32 type, uint64 offset). Only the header is read; weights never are.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from ftlang.plan import ModelSource
from ftlang.semantic.cards import FAMILIES, Card, CardError, family_aliases, family_modules

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_MAX_STRING = 1 << 24
_MAX_ITEMS = 1 << 26


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise CardError("the GGUF header is truncated")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    n = _read(f, "<Q")
    if n > _MAX_STRING:
        raise CardError("the GGUF header holds an implausible string length")
    return f.read(n).decode("utf-8", errors="replace")


def _value(f: BinaryIO, vtype: int, keep: bool) -> Any:
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == 8:
        return _string(f)
    if vtype == 9:
        itype, count = _read(f, "<I"), _read(f, "<Q")
        if count > _MAX_ITEMS:
            raise CardError("the GGUF header holds an implausible array length")
        if not keep:  # large arrays (the tokenizer's vocabulary): only their length matters here
            if itype in _SCALARS:
                f.seek(count * struct.calcsize(_SCALARS[itype]), 1)
            elif itype == 8:
                for _ in range(count):
                    f.seek(_read(f, "<Q"), 1)
            else:
                for _ in range(count):
                    _value(f, itype, False)
            return count
        if itype in _SCALARS:  # one unpack for the whole array (token types: 50K int32s)
            fmt = f"<{count}{_SCALARS[itype][1:]}"
            data = f.read(struct.calcsize(fmt))
            if len(data) != struct.calcsize(fmt):
                raise CardError("the GGUF header is truncated")
            return list(struct.unpack(fmt, data))
        return [_value(f, itype, True) for _ in range(count)]
    raise CardError(f"unknown GGUF value type {vtype}")


@lru_cache(maxsize=32)
def _cached_header(path: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], list[str]]:
    return _read_header(Path(path))


def read_header(path: Path) -> tuple[dict[str, Any], list[str]]:
    """(metadata, tensor names); arrays are replaced by their length. Cached per file version."""
    try:
        st = path.stat()
    except OSError as e:
        raise CardError(f"cannot read the GGUF file: {e.strerror or e}") from e
    return _cached_header(str(path), st.st_mtime_ns, st.st_size)


def read_metadata(path: Path, keep: tuple[str, ...]) -> dict[str, Any]:
    """The metadata with the arrays named in `keep` read whole (the tokenizer's tokens and merges: what
    data/light_tokenizer.py builds a tokenizer from); the other arrays are their length. Not cached."""
    return _read_header(path, keep)[0]


def _read_header(path: Path, keep: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise CardError("not a GGUF file (bad magic)")
            version = _read(f, "<I")
            if version not in (2, 3):
                raise CardError(f"GGUF version {version} is not supported")
            n_tensors, n_kv = _read(f, "<Q"), _read(f, "<Q")
            meta = {}
            for _ in range(n_kv):
                key = _string(f)
                meta[key] = _value(f, _read(f, "<I"), key in keep)
            names = []
            for _ in range(n_tensors):
                names.append(_string(f))
                dims = _read(f, "<I")
                f.read(8 * dims + 4 + 8)
            return meta, names
    except OSError as e:
        raise CardError(f"cannot read the GGUF file: {e.strerror or e}") from e


#: GGUF general.architecture → family (llama.cpp writes Mistral and SmolLM2 as llama)
_FAMILY = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma": "gemma", "gemma2": "gemma2",
           "phi3": "phi3", "gpt2": "gpt2"}


def card_from_gguf(path: Path, source: ModelSource, span=None) -> Card:
    meta, tensors = read_header(path)
    arch = str(meta.get("general.architecture", ""))
    family = _FAMILY.get(arch)
    if family is None:
        raise CardError(f"GGUF architecture {arch!r} is not one ftlang knows ({', '.join(_FAMILY)})")

    def get(key: str, default: Any = None) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        if value is None:
            raise CardError(f"the GGUF metadata has no {arch}.{key}")
        return int(value)

    heads = get("attention.head_count")
    hidden = get("embedding_length")
    vocab = meta.get(f"{arch}.vocab_size") or meta.get("tokenizer.ggml.tokens")
    if not vocab:
        raise CardError("the GGUF metadata gives no vocabulary size")
    key_len = meta.get(f"{arch}.attention.key_length")
    return Card(
        name=None, source=source, family=family, hidden=hidden, layers=get("block_count"), heads=heads,
        kv_heads=get("attention.head_count_kv", heads), intermediate=get("feed_forward_length"), vocab=int(vocab),
        head_dim=int(key_len) if key_len and int(key_len) != hidden // heads else None,
        max_position=int(meta[f"{arch}.context_length"]) if f"{arch}.context_length" in meta else None,
        tie_embeddings="output.weight" not in tensors, qkv_bias=FAMILIES[family].bias, modules=family_modules(family),
        aliases=family_aliases(family), span=span,
        template="chatml" if "<|im_start|>" in str(meta.get("tokenizer.chat_template", "")) else None)
