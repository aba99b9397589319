"""Rows on disk: a pipeline's output rows spilled chunk by chunk into an Arrow IPC file, so the front half of
the data stage (sources through dedupe, filter, conversions, split) holds one chunk of row dicts at a time,
not the whole data set.

Columns: `row` (the public fields as canonical JSON, `rows.content_text`: the text the content hash covers),
`hash` (its sha256, 32 bytes), `source` and `line` (provenance), `meta` (the other `_meta` keys as JSON, or
null). The file is read back batch by batch through ordinary reads (not a memory map: pages read once are
not held in this process's RSS). A `RowTable` may select rows by index (a split), and decodes rows only as
they are read; `RawRows` is one chunk still as text, so tokenizer workers decode it, not the parent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ftlang.data.rows import content_text
from ftlang.data.tables import LazyRows

_META = ("source", "line")


class RawRows:
    """One chunk of a RowTable, undecoded (cheap to pickle to a worker); `rows()` builds the dicts."""

    def __init__(self, texts: list[str], sources: list[str], lines: list[int], metas: list[str | None]):
        self.texts, self.sources, self.lines, self.metas = texts, sources, lines, metas

    @classmethod
    def of(cls, batch) -> RawRows:
        """A record batch (or a slice of one) of a RowWriter file."""
        return cls(*(batch.column(c).to_pylist() for c in ("row", "source", "line", "meta")))

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self) -> list[dict]:
        out = []
        for text, source, line, meta in zip(self.texts, self.sources, self.lines, self.metas, strict=True):
            row = json.loads(text)
            row["_meta"] = {"source": source, "line": line, **(json.loads(meta) if meta else {})}
            out.append(row)
        return out


def rows_of(batch: list[dict] | RawRows) -> list[dict]:
    return batch.rows() if isinstance(batch, RawRows) else batch


class RowWriter:
    """Appends chunks of row dicts to an Arrow IPC file; `close()` gives the RowTable."""

    def __init__(self, path: Path):
        import pyarrow as pa

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.rows = path, 0
        self.schema = pa.schema([("row", pa.large_string()), ("hash", pa.binary(32)), ("source", pa.string()),
                                 ("line", pa.int64()), ("meta", pa.string())])
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, self.schema)
        self._sizes: list[int] = []

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa

        if not rows:
            return
        texts = [content_text(r) for r in rows]
        metas = [r.get("_meta", {}) for r in rows]
        extra = [{k: v for k, v in m.items() if k not in _META} for m in metas]
        cols = [pa.array(texts, pa.large_string()),
                pa.array([hashlib.sha256(t.encode("utf-8")).digest() for t in texts], pa.binary(32)),
                pa.array([m.get("source", "") for m in metas], pa.string()),
                pa.array([int(m.get("line", 1)) for m in metas], pa.int64()),
                pa.array([json.dumps(e, ensure_ascii=False) if e else None for e in extra], pa.string())]
        self._writer.write_batch(pa.record_batch(cols, schema=self.schema))
        self.rows += len(rows)
        self._sizes.append(len(rows))

    def close(self) -> RowTable:
        self._writer.close()
        self._sink.close()
        return RowTable(self.path, self._sizes)


class RowTable(LazyRows):
    """The rows of a file RowWriter wrote (or those at `index`, ascending), decoded as they are read.
    Compares equal to a list of the same dicts."""

    def __init__(self, path: Path, sizes: list[int], index: np.ndarray | None = None):
        import pyarrow as pa

        self.path, self._sizes = path, sizes  # rows per record batch, as written
        self._reader = pa.ipc.open_file(pa.OSFile(str(path), "rb"))
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.index = index
        self._cached: tuple[int, list[dict]] | None = None

    @property
    def stored(self) -> int:
        """Rows in the file (every index refers to one of them)."""
        return int(self._starts[-1])

    def select(self, index: np.ndarray) -> RowTable:
        """The rows at `index` (ascending positions among this table's rows)."""
        index = np.asarray(index, dtype=np.int64)
        return RowTable(self.path, self._sizes, index if self.index is None else self.index[index])

    def __len__(self) -> int:
        return self.stored if self.index is None else len(self.index)

    def _batches(self, column: str | None = None) -> Iterator[tuple[int, object]]:
        """(batch number, record batch limited to the selected rows) in file order; with `column`, a batch
        of that column only (the others are not read)."""
        import pyarrow as pa

        reader = self._reader
        if column is not None:
            fields = [self._reader.schema.get_field_index(column)]
            reader = pa.ipc.open_file(pa.OSFile(str(self.path), "rb"),
                                      options=pa.ipc.IpcReadOptions(included_fields=fields))
        for k in range(reader.num_record_batches):
            batch = reader.get_batch(k)
            if self.index is not None:
                a, b = np.searchsorted(self.index, self._starts[k:k + 2])
                if a == b:
                    continue
                batch = batch.take(self.index[a:b] - self._starts[k])
            yield k, batch

    def column(self, name: str) -> Iterator:
        """One column's values batch by batch (Arrow arrays), selected rows only."""
        for _, batch in self._batches(name):
            yield batch.column(name)

    def hashes(self) -> np.ndarray:
        """Every selected row's content hash (sha256 digest) as a numpy `S32` array."""
        # copied batch by batch: a view would keep every batch read alive until the concatenation
        parts = [np.frombuffer(col.buffers()[1], dtype="S32", count=len(col) + col.offset)[col.offset:].copy()
                 for col in self.column("hash")]
        return np.concatenate(parts) if parts else np.zeros(0, dtype="S32")

    def metas(self) -> Iterator[dict]:
        """The extra `_meta` keys (augmented, mixed, origin ...) of every selected row, in order."""
        for col in self.column("meta"):
            if col.null_count == len(col):
                yield from ({} for _ in range(len(col)))
            else:
                yield from (json.loads(m) if m else {} for m in col.to_pylist())

    def raw_chunks(self, size: int) -> Iterator[RawRows]:
        """The selected rows in chunks of at most `size`, undecoded."""
        for _, batch in self._batches():
            for at in range(0, batch.num_rows, size):
                yield RawRows.of(batch.slice(at, size))

    def __iter__(self) -> Iterator[dict]:
        for raw in self.raw_chunks(8192):
            yield from raw.rows()

    def _row(self, i: int) -> dict:
        pos = int(self.index[i]) if self.index is not None else i
        k = int(np.searchsorted(self._starts, pos, "right")) - 1
        if self._cached is None or self._cached[0] != k:  # one decoded batch kept: reads in order are cheap
            self._cached = (k, RawRows.of(self._reader.get_batch(k)).rows())
        return self._cached[1][pos - int(self._starts[k])]

    def __repr__(self) -> str:
        return f"RowTable({len(self)} rows of {self.path.name})"
