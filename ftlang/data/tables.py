"""Tokenized tables: flat int columns with row offsets, written chunk by chunk as Arrow IPC files and read
back memory-mapped, so a million tokenized rows cost disk pages, not a Python list per token.

A table holds `input_ids` (list<int32>) and `labels` (list<int32>, or int64 per row for classification);
`attention_mask` is not stored (rebuilt as ones). A packed table adds a `bins` file: each bin's member
rows, in order (packing.PackedRows). `TokenRows` is a read-only Sequence of the row dicts the collators take.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

IGNORE = -100


class Chunk:
    """One batch of tokenized rows, columnar: flat ids / labels and per-row lengths."""

    def __init__(self, ids: np.ndarray, lens: np.ndarray, labels: np.ndarray, per_row: bool = False):
        self.ids = ids.astype(np.int32, copy=False)
        self.lens = lens.astype(np.int64, copy=False)
        self.per_row = per_row  # labels: one int per row (classification), else flat like ids
        self.labels = labels.astype(np.int64 if per_row else np.int32, copy=False)

    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lens)]).astype(np.int64)


def rows_equal(a: Sequence, b) -> bool:
    """Row sequences compare like lists of the same dicts."""
    if not isinstance(b, Sequence) or isinstance(b, str) or len(a) != len(b):
        return False
    return all(x == y for x, y in zip(a, b, strict=True))


class LazyRows(Sequence):
    """A read-only Sequence whose items are built on access (`_row(i)`, i in range); compares equal to a
    list of the same items."""

    def _row(self, i: int):
        raise NotImplementedError

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._row(i)

    def __eq__(self, other) -> bool:
        return rows_equal(self, other)

    __hash__ = None  # type: ignore[assignment]


def empty_chunk(per_row: bool = False) -> Chunk:
    z = np.zeros(0, dtype=np.int64)
    return Chunk(z, z, z, per_row)


class TokenRows(LazyRows):
    """Rows of one or more chunks; a row is built (as a dict of lists) only when accessed.
    Compares equal to a list of the same dicts."""

    def __init__(self, chunks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]):
        # per chunk: (ids, offsets, labels, labels_per_row)
        self._chunks = [c for c in chunks if len(c[1]) > 1]
        self._starts = [0]
        for c in self._chunks:
            self._starts.append(self._starts[-1] + len(c[1]) - 1)

    @classmethod
    def of(cls, chunks: Sequence[Chunk]) -> TokenRows:
        return cls([(c.ids, c.offsets(), c.labels, c.per_row) for c in chunks])

    def __len__(self) -> int:
        return self._starts[-1]

    def length(self, i: int) -> int:
        k = bisect.bisect_right(self._starts, i) - 1
        offs = self._chunks[k][1]
        j = i - self._starts[k]
        return int(offs[j + 1] - offs[j])

    def lengths(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.diff(c[1]) for c in self._chunks])

    def _row(self, i: int) -> dict:
        k = bisect.bisect_right(self._starts, i) - 1
        ids, offs, labels, per_row = self._chunks[k]
        j = i - self._starts[k]
        a, b = int(offs[j]), int(offs[j + 1])
        row: dict[str, Any] = {"input_ids": ids[a:b].tolist()}
        row["labels"] = int(labels[j]) if per_row else labels[a:b].tolist()
        row["attention_mask"] = [1] * (b - a)
        return row

    def __repr__(self) -> str:
        return f"TokenRows({len(self)} rows)"


# ---------------------------------------------------------------------------- Arrow IPC files


class TableWriter:
    """Appends chunks to `<path>` (an Arrow IPC file); rows are never all in memory at once."""

    def __init__(self, path: Path, per_row_label: bool):
        import pyarrow as pa

        self.path, self.per_row_label, self.rows = path, per_row_label, 0
        self.schema = pa.schema([("input_ids", pa.large_list(pa.int32())),
                                 ("labels", pa.int64() if per_row_label else pa.large_list(pa.int32()))])
        self._writer = pa.ipc.new_file(str(path), self.schema)

    def write(self, chunk: Chunk) -> None:
        import pyarrow as pa

        if not len(chunk.lens):
            return
        offs = pa.array(chunk.offsets())
        ids = pa.LargeListArray.from_arrays(offs, pa.array(chunk.ids, type=pa.int32()))
        labels = pa.array(chunk.labels, type=pa.int64()) if self.per_row_label else \
            pa.LargeListArray.from_arrays(offs, pa.array(chunk.labels, type=pa.int32()))
        self._writer.write_batch(pa.record_batch([ids, labels], schema=self.schema))
        self.rows += len(chunk.lens)

    def close(self) -> None:
        self._writer.close()


def write_bins(path: Path, bins: list[list[int]]) -> None:
    import pyarrow as pa

    offsets = np.zeros(len(bins) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in bins])
    members = np.fromiter((i for b in bins for i in b), dtype=np.int64, count=int(offsets[-1]))
    table = pa.table({"members": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(members))})
    with pa.ipc.new_file(str(path), table.schema) as w:
        w.write_table(table)


def _open(path: Path):
    import pyarrow as pa

    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


def read_table(path: Path) -> TokenRows:
    """A table written by TableWriter, memory-mapped (zero-copy numpy views of the file's pages)."""
    table = _open(path)
    chunks = []
    for batch in table.to_batches():
        ids_col, labels_col = batch.column(0), batch.column(1)
        per_row = not hasattr(labels_col, "offsets")
        chunks.append((ids_col.values.to_numpy(), ids_col.offsets.to_numpy(),
                       labels_col.to_numpy() if per_row else labels_col.values.to_numpy(), per_row))
    return TokenRows(chunks)


def read_bins(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(members, offsets) of the bins written by write_bins."""
    col = _open(path).column(0).combine_chunks()
    return col.values.to_numpy(), col.offsets.to_numpy()
