"""Rows → token ids and labels: chat rows through the chat template with only assistant turns trained
(or everything, train_on = all), completion rows whole, classification rows as (ids, label index).

Tokenization is one batched call of the fast tokenizer with offsets; labels come from the character
spans of the assistant turns. The end-of-turn check proves each assistant turn's trained labels hold
an end-of-turn token (eos, <|im_end|>, <|eot_id|> ...): otherwise the model never learns to stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ftlang.data.formats import to_chat
from ftlang.data.templates import END_OF_TURN, ChatRenderer

IGNORE = -100
BATCH = 1024


def end_of_turn_ids(tokenizer) -> set[int]:
    ids = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN:
        if tok in vocab:
            ids.add(int(vocab[tok]))
    return ids


@dataclass
class Problem:
    row: dict
    code: str
    message: str


@dataclass
class Encoded:
    rows: list[dict] = field(default_factory=list)
    kept: list[dict] = field(default_factory=list)  # the source rows of `rows`, same order
    truncated: int = 0
    problems: list[Problem] = field(default_factory=list)  # rows that cannot be trained on
    eos_failures: list[Problem] = field(default_factory=list)
    tokens: int = 0
    trained_tokens: int = 0


def _tokenize(tokenizer, texts: list[str], offsets: bool) -> tuple[list[list[int]], list]:
    ids: list[list[int]] = []
    offs: list = []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # the Rust tokenizer directly: transformers' per-encoding conversion costs as much as the encoding
        for i in range(0, len(texts), BATCH):
            for enc in backend.encode_batch(texts[i:i + BATCH], add_special_tokens=False):
                ids.append(enc.ids)
                if offsets:
                    offs.append(enc)  # asked for token boundaries only where spans begin and end
        return ids, offs
    for i in range(0, len(texts), BATCH):
        enc = tokenizer(texts[i:i + BATCH], add_special_tokens=False, return_attention_mask=False,
                        return_offsets_mapping=offsets)
        ids.extend(enc["input_ids"])
        if offsets:
            offs.extend(enc["offset_mapping"])
    return ids, offs


def chat_texts(rows: list[dict], fmt: str, renderer: ChatRenderer) -> list[tuple[str, list[tuple[int, int]]]]:
    out = []
    for row in rows:
        messages = row["messages"] if fmt == "chat" else to_chat(row, "instruction")["messages"]
        out.append(renderer.spans(messages))
    return out


def encode_chat(rows: list[dict], fmt: str, tokenizer, renderer: ChatRenderer, *, train_on: str,
                max_seq_len: int, check_eos: bool = True) -> Encoded:
    rendered = chat_texts(rows, fmt, renderer)
    texts = [t for t, _ in rendered]
    fast = getattr(tokenizer, "is_fast", False)
    if fast:
        all_ids, all_offsets = _tokenize(tokenizer, texts, offsets=True)
    else:
        all_ids, all_offsets = _segment_tokenize(tokenizer, rendered)
    eot = sorted(end_of_turn_ids(tokenizer))
    out = Encoded()
    for row, (text, spans), ids, offsets in zip(rows, rendered, all_ids, all_offsets, strict=True):
        ids_arr = np.asarray(ids, dtype=np.int64)
        starts = _token_starts(offsets, spans, len(ids), len(text)) if fast else np.asarray(offsets)
        if train_on == "all":
            trained = np.ones(len(ids_arr), dtype=bool)
        else:
            trained = np.zeros(len(ids_arr), dtype=bool)
            for a, b in spans:
                trained |= (starts >= a) & (starts < b)
        truncated = len(ids_arr) > max_seq_len
        if check_eos and not truncated:
            is_eot = np.zeros(len(ids_arr), dtype=bool)
            for e in eot:
                is_eot |= ids_arr == e
            is_eot &= trained
            for k, (a, b) in enumerate(spans):
                if not (is_eot & (starts >= a) & (starts < b)).any():
                    out.eos_failures.append(Problem(row, "FT617", f"assistant turn {k + 1}: no end-of-turn token "
                                                                  "in the trained labels"))
                    break
        if truncated:
            out.truncated += 1
            ids_arr, trained = ids_arr[:max_seq_len], trained[:max_seq_len]
        if not trained.any():
            code, why = ("FT618", f"no trainable token left after truncation to max_seq_len {max_seq_len}") \
                if truncated else ("FT626", "every token is masked: no assistant tokens to train on")
            out.problems.append(Problem(row, code, why))
            continue
        labels = np.where(trained, ids_arr, IGNORE)
        ids_list = ids_arr.tolist()
        out.rows.append({"input_ids": ids_list, "labels": labels.tolist(), "attention_mask": [1] * len(ids_list)})
        out.kept.append(row)
        out.tokens += len(ids_list)
        out.trained_tokens += int(trained.sum())
    return out


def _token_starts(offsets, spans, n: int, length: int):
    """Per-token start characters, or (from a Rust Encoding) a cheap stand-in that gives the same
    masks: each token is placed at the span boundary it follows, found with char_to_token."""
    if not hasattr(offsets, "char_to_token"):
        return np.asarray([o[0] for o in offsets], dtype=np.int64)
    enc = offsets
    cuts = sorted({p for s in spans for p in s})
    starts = np.full(n, -1, dtype=np.int64)  # -1: before every span
    for c in cuts:
        if c >= length:
            continue
        t = enc.char_to_token(c)
        if t is None:  # a character no token covers: fall back to the full offsets
            return np.asarray([o[0] for o in enc.offsets], dtype=np.int64)
        if enc.token_to_chars(t)[0] < c:  # a token straddling the cut starts before it
            t += 1
        starts[t:] = c
    return starts


def _segment_tokenize(tokenizer, rendered):
    # slow tokenizers have no offsets: tokenize each masked / trained piece on its own
    all_ids, all_starts = [], []
    for text, spans in rendered:
        cuts = sorted({0, len(text), *[p for s in spans for p in s]})
        ids, starts = [], []
        for a, b in zip(cuts, cuts[1:], strict=False):
            piece = tokenizer(text[a:b], add_special_tokens=False)["input_ids"]
            ids += piece
            starts += [a] * len(piece)
        all_ids.append(ids)
        all_starts.append(starts)
    return all_ids, all_starts


def encode_completion(rows: list[dict], tokenizer, *, max_seq_len: int) -> Encoded:
    eos = getattr(tokenizer, "eos_token", None) or ""
    all_ids, _ = _tokenize(tokenizer, [r["text"] + eos for r in rows], offsets=False)
    out = Encoded()
    for row, ids in zip(rows, all_ids, strict=True):
        if len(ids) > max_seq_len:
            out.truncated += 1
            ids = ids[:max_seq_len]
        out.rows.append({"input_ids": list(ids), "labels": list(ids), "attention_mask": [1] * len(ids)})
        out.kept.append(row)
        out.tokens += len(ids)
        out.trained_tokens += len(ids)
    return out


def encode_classification(rows: list[dict], tokenizer, labels: list[str], *, max_seq_len: int) -> Encoded:
    index = {name: i for i, name in enumerate(labels)}
    enc = tokenizer([r["text"] for r in rows], add_special_tokens=True, return_attention_mask=False)
    out = Encoded()
    for row, ids in zip(rows, enc["input_ids"], strict=True):
        if row["label"] not in index:
            out.problems.append(Problem(row, "FT616", f"unknown label {row['label']!r}; the task's labels are "
                                                      f"{', '.join(labels)}"))
            continue
        if len(ids) > max_seq_len:
            out.truncated += 1
            ids = list(ids[: max_seq_len - 1]) + [ids[-1]]  # keep the closing [SEP]
        out.rows.append({"input_ids": list(ids), "attention_mask": [1] * len(ids), "labels": index[row["label"]]})
        out.kept.append(row)
        out.tokens += len(ids)
    return out
