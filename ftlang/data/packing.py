"""Padding-free packing and the data collators the Trainer uses.

Packing puts tokenized rows side by side in bins of at most max_seq_len tokens (best-fit decreasing),
resets position_ids at every row start, masks the label of each row's first token (so no row learns
to predict across a boundary) and, in the collator, builds a b×1×L×L block-diagonal causal bool mask:
on the CPU's SDPA attention position_ids alone do not keep packed rows apart, the 4D mask does.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from ftlang.data.tables import IGNORE, LazyRows


def pack_bins(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Row indexes per bin (best-fit decreasing; members in row order). Needs only the lengths, so it
    runs on memory-mapped tables and never touches a token."""
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for i in order:
        n = int(lengths[i])
        at = bisect.bisect_left(free, (n, -1))
        if at < len(free):
            room, b = free.pop(at)
            bins[b].append(i)
            bisect.insort(free, (room - n, b))
        else:
            bins.append([i])
            bisect.insort(free, (max_len - n, len(bins) - 1))
    return [sorted(members) for members in bins]


class PackedRows(LazyRows):
    """Bins of rows built on access: {"input_ids", "labels", "position_ids", "seq_lens"}, each row's first
    label masked. `members[offsets[b]:offsets[b + 1]]` are bin b's rows."""

    def __init__(self, rows: Sequence[dict], members: Sequence[int], offsets: Sequence[int]):
        self.rows, self._members, self._offsets = rows, members, offsets

    @classmethod
    def of(cls, rows: Sequence[dict], bins: list[list[int]]) -> PackedRows:
        offsets = [0]
        for b in bins:
            offsets.append(offsets[-1] + len(b))
        return cls(rows, [i for b in bins for i in b], offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def lengths(self) -> np.ndarray:
        """Tokens per bin, from the rows' lengths (no bin is built)."""
        rows = self.rows
        base = rows.lengths() if hasattr(rows, "lengths") else np.asarray([len(r["input_ids"]) for r in rows])
        total = np.concatenate([[0], np.cumsum(np.asarray(base, dtype=np.int64)[np.asarray(self._members,
                                                                                              dtype=np.int64)])])
        offsets = np.asarray(self._offsets, dtype=np.int64)
        return total[offsets[1:]] - total[offsets[:-1]]

    def _bin(self, b: int) -> dict:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        lens: list[int] = []
        for i in self._members[self._offsets[b]:self._offsets[b + 1]]:
            r = self.rows[int(i)]
            n = len(r["input_ids"])
            ids += list(r["input_ids"])
            lab = list(r["labels"])
            lab[0] = IGNORE
            labels += lab
            pos += range(n)
            lens.append(n)
        return {"input_ids": ids, "labels": labels, "position_ids": pos, "seq_lens": lens}

    _row = _bin


def pack_rows(rows: Sequence[dict], max_len: int) -> list[dict]:
    """Bins of rows, each {"input_ids", "labels", "position_ids", "seq_lens"} (see pack_bins)."""
    return list(PackedRows.of(rows, pack_bins([len(r["input_ids"]) for r in rows], max_len)))


def block_causal_mask(seq_lens_batch: Sequence[Sequence[int]], length: int):
    """b×1×L×L bool: True where a query may attend a key (same row, key not after query). Pad positions
    attend only to themselves so no softmax row is empty."""
    import torch

    b = len(seq_lens_batch)
    seg = torch.full((b, length), -1, dtype=torch.long)
    for k, lens in enumerate(seq_lens_batch):
        at = 0
        for j, n in enumerate(lens):
            seg[k, at:at + n] = j
            at += n
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    same = seg[:, :, None] == seg[:, None, :]
    pad = seg < 0
    eye = torch.eye(length, dtype=torch.bool)
    mask = (same & ~pad[:, :, None] & causal) | (pad[:, :, None] & eye)
    return mask[:, None, :, :]


def _lens_from_positions(positions, n: int) -> list[int]:
    """Row lengths of a packed bin from its position_ids (each row restarts at 0), for callers that
    dropped seq_lens (e.g. a Trainer removing columns the model's forward does not name)."""
    if positions is None:
        return [n]
    starts = [i for i, p in enumerate(list(positions)) if p == 0] or [0]
    return [b - a for a, b in zip(starts, starts[1:] + [n], strict=True)]


class PadCollator:
    """Right-pads input_ids (pad id), labels (-100) and attention_mask (0) to the longest row."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        length = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), length), self.pad_id, dtype=torch.long)
        att = torch.zeros((len(features), length), dtype=torch.long)
        first = features[0]["labels"]
        classify = not isinstance(first, (list, tuple)) and getattr(first, "ndim", 0) == 0
        labels = (torch.tensor([int(f["labels"]) for f in features], dtype=torch.long) if classify
                  else torch.full((len(features), length), IGNORE, dtype=torch.long))
        for k, f in enumerate(features):
            n = len(f["input_ids"])
            ids[k, :n] = torch.as_tensor(list(f["input_ids"]), dtype=torch.long)
            att[k, :n] = 1
            if not classify:
                labels[k, :n] = torch.as_tensor(list(f["labels"]), dtype=torch.long)
        return {"input_ids": ids, "attention_mask": att, "labels": labels}


class PackedCollator:
    """Packed bins → input_ids, labels, position_ids and the 4D block-diagonal causal attention_mask."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        length = max(len(f["input_ids"]) for f in features)
        b = len(features)
        ids = torch.full((b, length), self.pad_id, dtype=torch.long)
        labels = torch.full((b, length), IGNORE, dtype=torch.long)
        pos = torch.zeros((b, length), dtype=torch.long)
        seqs = []
        for k, f in enumerate(features):
            n = len(f["input_ids"])
            ids[k, :n] = torch.as_tensor(list(f["input_ids"]), dtype=torch.long)
            labels[k, :n] = torch.as_tensor(list(f["labels"]), dtype=torch.long)
            pos[k, :n] = torch.as_tensor(list(f["position_ids"]) if "position_ids" in f else range(n), dtype=torch.long)
            seqs.append(list(f.get("seq_lens") or _lens_from_positions(f.get("position_ids"), n)))
        return {"input_ids": ids, "labels": labels, "position_ids": pos,
                "attention_mask": block_causal_mask(seqs, length)}
