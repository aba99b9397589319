"""Rows → token ids and labels: chat rows through the chat template with only assistant turns trained
(or everything, train_on = all), completion rows whole, classification rows as (ids, label index).

Rows come in batches; a batch is rendered (templates.ChatRenderer.spans_batch), tokenized in one batched
call of the fast tokenizer, and its labels and checks are computed over flat numpy columns (tables.Chunk):
labels come from the character spans of the assistant turns, as token ranges. The end-of-turn check proves each assistant turn's trained labels hold
an end-of-turn token (eos, <|im_end|>, <|eot_id|> ...): otherwise the model never learns to stop.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from ftlang.data.formats import to_chat
from ftlang.data.tables import IGNORE, Chunk, TokenRows, empty_chunk
from ftlang.data.templates import END_OF_TURN, ChatRenderer
from ftlang.diagnostics import DiagnosticError

BATCH = 1024


def end_of_turn_ids(tokenizer) -> set[int]:
    ids = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    # per token, not get_vocab(): a 50K vocab costs 0.15 s a call, and this runs once per batch
    lookup = backend.token_to_id if backend is not None else tokenizer.get_vocab().get
    for tok in END_OF_TURN:
        i = lookup(tok)
        if i is not None:
            ids.add(int(i))
    return ids


@dataclass
class Problem:
    row: dict
    code: str
    message: str


@dataclass
class Encoded:
    """One batch of rows encoded: the kept rows as a columnar Chunk, the rows that cannot be trained on."""

    chunk: Chunk
    kept: list[int] = field(default_factory=list)  # indexes (into the input batch) of the chunk's rows
    truncated: int = 0
    problems: list[Problem] = field(default_factory=list)  # rows that cannot be trained on
    eos_failures: list[Problem] = field(default_factory=list)
    tokens: int = 0
    trained_tokens: int = 0

    @property
    def rows(self) -> TokenRows:
        return TokenRows.of([self.chunk])


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
    convs = [row["messages"] if fmt == "chat" else to_chat(row, "instruction")["messages"] for row in rows]
    return renderer.spans_batch(convs)


def _flat(all_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter((len(x) for x in all_ids), dtype=np.int64, count=len(all_ids))
    ids = np.fromiter(chain.from_iterable(all_ids), dtype=np.int32, count=int(lens.sum()))
    return ids, lens


def _ranges_mask(total: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A bool mask over `total` positions, True inside any [start, end) range (ranges may overlap)."""
    delta = np.zeros(total + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    return np.cumsum(delta[:-1]) > 0


def _span_tokens(offsets, spans, n: int, length: int) -> list[tuple[int, int]]:
    """[first, end) token indexes of every character span: a token belongs to the span its start falls in."""
    starts = _token_starts(offsets, spans, n, length)
    return [(int(np.searchsorted(starts, a, "left")), int(np.searchsorted(starts, b, "left"))) for a, b in spans]


def encode_chat(rows: list[dict], fmt: str, tokenizer, renderer: ChatRenderer, *, train_on: str,
                max_seq_len: int, check_eos: bool = True) -> Encoded:
    rendered = chat_texts(rows, fmt, renderer)
    texts = [t for t, _ in rendered]
    fast = getattr(tokenizer, "is_fast", False)
    if fast:
        all_ids, all_offsets = _tokenize(tokenizer, texts, offsets=True)
    else:
        all_ids, all_offsets = _segment_tokenize(tokenizer, rendered)
    ids, lens = _flat(all_ids)
    offs = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    # every assistant span as a token range, in flat (batch) positions
    row_of, span_a, span_b = [], [], []
    for k, ((text, spans), offsets) in enumerate(zip(rendered, all_offsets, strict=True)):
        n = int(lens[k])
        pieces = _span_tokens(offsets, spans, n, len(text)) if fast else \
            [(int(np.searchsorted(offsets, a)), int(np.searchsorted(offsets, b))) for a, b in spans]
        for a, b in pieces:
            row_of.append(k)
            span_a.append(offs[k] + a)
            span_b.append(offs[k] + b)
    del all_ids, all_offsets, rendered, texts
    row_of_a = np.asarray(row_of, dtype=np.int64)
    span_a_a, span_b_a = np.asarray(span_a, dtype=np.int64), np.asarray(span_b, dtype=np.int64)
    trained = np.ones(len(ids), dtype=bool) if train_on == "all" else _ranges_mask(len(ids), span_a_a, span_b_a)
    truncated = lens > max_seq_len
    out = Encoded(empty_chunk())
    if check_eos and len(span_a_a):
        eot = np.isin(ids, sorted(end_of_turn_ids(tokenizer))) & trained
        count = np.concatenate([[0], np.cumsum(eot)])
        missing = (count[span_b_a] - count[span_a_a] == 0) & ~truncated[row_of_a]
        failed: set[int] = set()
        for j in np.flatnonzero(missing):
            k = int(row_of_a[j])
            if k in failed:
                continue
            failed.add(k)
            turn = int(j - np.searchsorted(row_of_a, k))
            out.eos_failures.append(Problem(rows[k], "FT617", f"assistant turn {turn + 1}: no end-of-turn token "
                                                              "in the trained labels"))
    keep_len = np.minimum(lens, max_seq_len)
    position = np.arange(len(ids)) - np.repeat(offs[:-1], lens)
    inside = position < np.repeat(keep_len, lens)
    count = np.concatenate([[0], np.cumsum(trained & inside)])
    trained_kept = count[offs[1:]] - count[offs[:-1]]
    keep = trained_kept > 0
    for k in np.flatnonzero(~keep):
        code, why = ("FT618", f"no trainable token left after truncation to max_seq_len {max_seq_len}") \
            if truncated[k] else ("FT626", "every token is masked: no assistant tokens to train on")
        out.problems.append(Problem(rows[int(k)], code, why))
    take = inside & np.repeat(keep, lens)
    labels = np.where(trained, ids, IGNORE).astype(np.int32)
    out.chunk = Chunk(ids[take], keep_len[keep], labels[take])
    out.kept = np.flatnonzero(keep).tolist()
    out.truncated = int(truncated.sum())
    out.tokens = int(keep_len[keep].sum())
    out.trained_tokens = int(trained_kept[keep].sum())
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
    cut = [ids[:max_seq_len] for ids in all_ids]
    ids, lens = _flat(cut)
    out = Encoded(Chunk(ids, lens, ids.copy()), kept=list(range(len(rows))))
    out.truncated = sum(len(x) > max_seq_len for x in all_ids)
    out.tokens = out.trained_tokens = int(lens.sum())
    return out


def encode_classification(rows: list[dict], tokenizer, labels: list[str], *, max_seq_len: int) -> Encoded:
    index = {name: i for i, name in enumerate(labels)}
    enc = tokenizer([r["text"] for r in rows], add_special_tokens=True, return_attention_mask=False)
    out = Encoded(empty_chunk(per_row=True))
    kept_ids: list[list[int]] = []
    label_ids: list[int] = []
    for k, (row, ids) in enumerate(zip(rows, enc["input_ids"], strict=True)):
        if row["label"] not in index:
            out.problems.append(Problem(row, "FT616", f"unknown label {row['label']!r}; the task's labels are "
                                                      f"{', '.join(labels)}"))
            continue
        if len(ids) > max_seq_len:
            out.truncated += 1
            ids = list(ids[: max_seq_len - 1]) + [ids[-1]]  # keep the closing [SEP]
        kept_ids.append(ids)
        label_ids.append(index[row["label"]])
        out.kept.append(k)
    flat, lens = _flat(kept_ids)
    out.chunk = Chunk(flat, lens, np.asarray(label_ids, dtype=np.int64), per_row=True)
    out.tokens = int(lens.sum())
    return out


# ---------------------------------------------------------------------------- worker processes

_JOB: Callable[[list[dict]], Encoded] | None = None  # set in the parent before forking the workers


def _run_job(batch: list[dict]) -> Encoded | list:
    assert _JOB is not None
    try:
        return _JOB(batch)
    except DiagnosticError as e:  # its diagnostics cross the process boundary, the exception does not pickle
        return e.diagnostics


def _quiet_worker() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker: the workers are the parallelism


def _result(future) -> Encoded:
    got = future.result()
    if isinstance(got, list):
        raise DiagnosticError(got)
    return got


def map_batches(job: Callable[[list[dict]], Encoded], batches: Iterator[list[dict]], workers: int) -> Iterator[Encoded]:
    """`job` over every batch, results in order. With workers > 1 (and fork available) batches go to that
    many forked processes, at most 2 per worker in flight, so memory stays a few batches deep."""
    global _JOB
    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        yield from map(job, batches)
        return
    from concurrent.futures import ProcessPoolExecutor

    _JOB = job
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_quiet_worker) as pool:
            pending: deque = deque()
            for batch in batches:
                pending.append(pool.submit(_run_job, batch))
                if len(pending) >= 2 * workers:
                    yield _result(pending.popleft())
            while pending:
                yield _result(pending.popleft())
    finally:
        _JOB = None
