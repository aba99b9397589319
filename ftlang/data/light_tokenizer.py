"""The model's tokenizer without transformers or torch, for `ftlang check --data`.

A `tokenizers` (Rust) Tokenizer built from what `AutoTokenizer.from_pretrained` reads: a model folder's
tokenizer.json (+ tokenizer_config.json, special_tokens_map.json, chat_template.jinja), a GGUF file's
byte-level BPE vocabulary, merges and token types (built as transformers' GGUF converter builds it), or
either one from the Hugging Face cache (never the network). `LightTokenizer` has the attributes the data
stage's encoders (data/tokenize.py) and chat renderer (data/templates.py) read of a transformers
tokenizer, so the rows are rendered and tokenized by the run's own code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ftlang.diagnostics import DiagnosticError
from ftlang.plan import Plan
from ftlang.semantic.tokenizer_files import chat_template

INSTALL = "install ftlang[train] for the `tokenizers` package"

#: llama.cpp pre-tokenizer names transformers splits with its own regex (not GPT-2's ByteLevel one):
#: not rebuilt here, so such a GGUF falls back to max_seq_len
_OWN_SPLIT = frozenset({
    "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano",
    "dbrx", "smaug-bpe", "tekken", "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "qwen35",
    "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2",
})


class Unavailable(Exception):
    """Why no tokenizer could be built here (the estimate then uses max_seq_len and says this)."""


@dataclass
class LightTokenizer:
    backend_tokenizer: Any  # tokenizers.Tokenizer
    bos_token: str | None
    eos_token: str | None
    pad_token: str | None
    chat_template: str | dict | None
    is_fast: bool = True

    @property
    def eos_token_id(self) -> int | None:
        return self.backend_tokenizer.token_to_id(self.eos_token) if self.eos_token else None

    @property
    def pad_token_id(self) -> int | None:
        return self.backend_tokenizer.token_to_id(self.pad_token) if self.pad_token else None

    def __call__(self, texts: list[str], add_special_tokens: bool = True, **_ignored: Any) -> dict:
        """Batch encoding as a transformers tokenizer returns it (encode_classification calls this)."""
        encs = self.backend_tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encs]}

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab()


def _token(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _read_json(path: Path) -> dict:
    try:
        got = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as e:
        raise Unavailable(f"{path.name} is unreadable: {e}") from None
    return got if isinstance(got, dict) else {}


def _special(tokenizer, names: list[str | None], special: bool = True) -> None:
    from tokenizers import AddedToken

    # as transformers adds its named special tokens: whole, never normalized (a no-op for known ones)
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=special) for t in names if t])


def from_dir(folder: Path) -> LightTokenizer:
    """A save_pretrained folder's tokenizer (tokenizer.json is required: no slow-tokenizer conversion)."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise Unavailable(f"no tokenizer.json in {folder}")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises plain Exception on a malformed file
        raise Unavailable(f"tokenizer.json is unreadable: {str(e)[:200]}") from None
    tok.no_padding()  # transformers pads and truncates only when asked; a saved tokenizer.json may say to
    tok.no_truncation()
    cfg = {**_read_json(folder / "special_tokens_map.json"), **_read_json(folder / "tokenizer_config.json")}
    names = {k: _token(cfg.get(k)) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    extra = cfg.get("extra_special_tokens") or cfg.get("additional_special_tokens") or []
    _special(tok, [*names.values(), *(_token(t) for t in (extra if isinstance(extra, list) else []))])
    return LightTokenizer(tok, names["bos_token"], names["eos_token"], names["pad_token"], chat_template(folder, cfg))


@lru_cache(maxsize=1)
def _byte_spelling() -> dict[int, str]:
    """GPT-2's byte → printable character map (how a byte-level vocabulary spells every byte)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out, extra = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


_GGUF_KEYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type")


def from_gguf(path: Path) -> LightTokenizer:
    """A GGUF file's byte-level BPE tokenizer, as transformers' GGUF converter builds it (vocabulary re-spelled
    into the byte alphabet, the file's merges, CONTROL tokens special, USER_DEFINED ones added)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from ftlang.semantic.cards import CardError
    from ftlang.semantic.gguf_meta import read_metadata

    try:
        meta = read_metadata(path, _GGUF_KEYS)
    except CardError as e:
        raise Unavailable(str(e)) from None
    kind, pre = meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.pre")
    tokens, merges = meta.get("tokenizer.ggml.tokens"), meta.get("tokenizer.ggml.merges")
    if kind != "gpt2" or pre in _OWN_SPLIT or not isinstance(tokens, list) or not isinstance(merges, list):
        raise Unavailable(f"the GGUF's {kind!r} tokenizer (pre {pre!r}) is rebuilt only by transformers")
    spelling = _byte_spelling()
    alphabet = set(spelling.values())
    vocab = {t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8")): i
             for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], dropout=None,
                               continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    types = meta.get("tokenizer.ggml.token_type") or []
    _special(tok, [t for t, k in zip(tokens, types, strict=False) if k == 3 and set(t) <= alphabet])
    _special(tok, [t for t, k in zip(tokens, types, strict=False) if k == 4 and t in vocab], special=False)

    def named(key: str) -> str | None:
        i = meta.get(f"tokenizer.ggml.{key}")
        return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else None

    return LightTokenizer(tok, named("bos_token_id"), named("eos_token_id"), named("padding_token_id"),
                          meta.get("tokenizer.chat_template"))


def _cached(repo: str, filename: str, revision: str | None) -> Path:
    """A hub file already in the local Hugging Face cache; never downloads."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        raise Unavailable(f"{repo} is a hub model and huggingface_hub is not installed") from None
    got = try_to_load_from_cache(repo, filename, revision=revision)
    if not isinstance(got, str):
        raise Unavailable(f"{repo}'s {filename} is not in the Hugging Face cache (check never downloads)")
    return Path(got)


def light_tokenizer(plan: Plan) -> LightTokenizer:
    """The plan's tokenizer as load_tokenizer (backend/load.py) makes it, with `add_tokens` and `pad_token`."""
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        raise Unavailable(INSTALL) from None
    from ftlang.semantic.locate import model_location

    src = plan.model.source
    if src.trust_remote_code:
        raise Unavailable("the model runs its own code (trust_remote_code): only `ftlang run` loads its tokenizer")
    try:
        where = model_location(plan)
    except DiagnosticError as e:
        raise Unavailable(e.diagnostics[0].message) from None
    gguf = where.kwargs.get("gguf_file")
    revision = where.kwargs.get("revision")
    if gguf:
        tok = from_gguf(Path(where.path) / gguf if where.is_local else _cached(where.path, gguf, revision))
    else:
        tok = from_dir(Path(where.path) if where.is_local else
                       _cached(where.path, "tokenizer.json", revision).parent)
    if plan.train.add_tokens:
        _special(tok.backend_tokenizer, list(plan.train.add_tokens))
    if plan.train.pad_token is not None:
        _special(tok.backend_tokenizer, [plan.train.pad_token])
        tok.pad_token = plan.train.pad_token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
