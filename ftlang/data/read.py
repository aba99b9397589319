"""Torch-free readers for local data files: jsonl, json (an array of objects), csv, parquet.

Every reader keeps the 1-based line each row starts on (csv: the header is line 1; parquet: the row
number) so problems point at the data file. Bytes that are not UTF-8 are kept as surrogate escapes and
reported per line instead of aborting the whole file. A problem that makes the rest of a file
unreadable (a truncated JSON array, an unclosed CSV quote, a corrupt parquet footer) is a `FileProblem`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass
class Entry:
    """One row as read: its value (dict for a good row) or the problem that stopped it."""

    line: int
    value: Any
    raw: str
    code: str | None = None  # set when the row could not be read
    message: str | None = None


@dataclass
class FileProblem:
    code: str
    message: str
    line: int = 1


@dataclass
class ReadResult:
    entries: list[Entry] | Iterator[Entry] = field(default_factory=list)  # jsonl: read lazily, line by line
    fatal: FileProblem | None = None  # the rest of the file is unreadable
    columns: list[str] | None = None  # csv header / parquet schema


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)
_LOOSE = json.JSONDecoder()


def decode(data: bytes) -> tuple[str | None, FileProblem | None]:
    """UTF-8 text (BOM stripped, bad bytes as surrogate escapes), or a whole-file encoding problem."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, FileProblem("FT602", "the file is UTF-16 encoded (it starts with a UTF-16 BOM); "
                                          "ftlang reads UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="surrogateescape"), None


_ESCAPED = re.compile("[\udc80-\udcff]")


def bad_utf8(text: str) -> str | None:
    """A message naming the first non-UTF-8 byte of `text`, or None when it is clean."""
    m = _ESCAPED.search(text)
    if m is None:
        return None
    return f"not valid UTF-8: byte 0x{ord(m.group()) - 0xDC00:02x} at column {m.start() + 1} (decode error)"


def printable_raw(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _parse_object(text: str) -> tuple[Any, str | None, str | None]:
    try:
        return _DECODER.decode(text), None, None
    except _DuplicateKey as e:
        return None, "FT611", f"duplicate key {str(e)!r} in the JSON object"
    except json.JSONDecodeError as e:
        return None, "FT601", f"invalid JSON: {e.msg} (column {e.colno})"


def _jsonl_entry(i: int, line: str) -> Entry | None:
    line = line.rstrip("\r")
    if not line.strip():
        return None  # blank lines are not rows
    raw = printable_raw(line)
    problem = bad_utf8(line)
    if problem:
        return Entry(i, None, raw, "FT602", problem)
    value, code, message = _parse_object(line)
    return Entry(i, value, raw, code, message)


def read_jsonl(text: str) -> ReadResult:
    out = ReadResult()
    entries = (_jsonl_entry(i, line) for i, line in enumerate(text.split("\n"), 1))
    out.entries = [e for e in entries if e is not None]
    return out


def _jsonl_lines(path: Path) -> Iterator[Entry]:
    # bytes split on b"\n" only, like the text reader: a file larger than memory streams through
    with open(path, "rb") as f:
        for i, data in enumerate(f, 1):
            if i == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            entry = _jsonl_entry(i, data.rstrip(b"\n").decode("utf-8", errors="surrogateescape"))
            if entry is not None:
                yield entry


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i


class _Lines:
    """Line numbers of ascending positions in one text, counting each newline once (a count from the start
    for every element made a JSON array's reading quadratic in its size)."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def __call__(self, pos: int) -> int:
        if pos < self.pos:
            return _line_of(self.text, pos)
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def read_json(text: str) -> ReadResult:
    """A JSON array of row objects; each row's line is the line its element starts on."""
    out = ReadResult()
    line_of = _Lines(text)
    i = _skip_ws(text, 0)
    if i >= len(text):
        return out
    if text[i] != "[":
        kind = "an object" if text[i] == "{" else "a scalar"
        out.fatal = FileProblem("FT601", f"a .json source must hold a JSON array (a list) of row objects, "
                                         f"got {kind}", line_of(i))
        return out
    i = _skip_ws(text, i + 1)
    if i < len(text) and text[i] == "]":
        return out
    while True:
        start = i
        try:
            value, end = _DECODER.raw_decode(text, i)
            code = message = None
        except _DuplicateKey as e:
            value, end = _LOOSE.raw_decode(text, i)
            value, code, message = None, "FT611", f"duplicate key {str(e)!r} in the JSON object"
        except json.JSONDecodeError as e:
            out.fatal = FileProblem("FT601", f"invalid JSON: {e.msg} (truncated file?)", line_of(e.pos))
            return out
        raw = text[start:end]
        problem = bad_utf8(raw)
        if problem:
            code, message, value = "FT602", problem, None
        out.entries.append(Entry(line_of(start), value, printable_raw(raw), code, message))
        i = _skip_ws(text, end)
        if i >= len(text):
            out.fatal = FileProblem("FT601", "invalid JSON: the array is never closed with ']' (truncated file?)",
                                    line_of(len(text)))
            return out
        if text[i] == "]":
            return out
        if text[i] != ",":
            out.fatal = FileProblem("FT601", f"invalid JSON: expecting ',' or ']' after an element, got {text[i]!r}",
                                    line_of(i))
            return out
        i = _skip_ws(text, i + 1)
        if i < len(text) and text[i] == "]":
            out.fatal = FileProblem("FT601", "invalid JSON: trailing comma before ']' (expecting a value)",
                                    line_of(i))
            return out


def read_csv(text: str | TextIO, required: list[str], delimiter: str = ",") -> ReadResult:
    """A CSV file with a header row; `required` are the columns the declared format needs. The header is
    read now, the rows as they are consumed (from a file: a file larger than memory streams through).
    `delimiter`: a tab for .tsv files."""
    out = ReadResult()
    stream = io.StringIO(text, newline="") if isinstance(text, str) else text
    reader = csv.reader(stream, strict=True, delimiter=delimiter)
    try:
        header = next(reader, None)
    except csv.Error as e:
        out.fatal = FileProblem("FT601", f"CSV error: {e} (an unclosed quote runs to the end of the file)", 1)
        return out
    if header is None:
        return out
    header = [h.strip() for h in header]
    out.columns = header
    missing = [c for c in required if c not in header]
    if missing:
        out.fatal = FileProblem("FT603", f"missing required column {missing[0]!r}: the header has "
                                         f"{', '.join(header) or 'no columns'}", 1)
        return out
    out.entries = _csv_rows(reader, header, out, delimiter)
    return out


def _csv_rows(reader, header: list[str], out: ReadResult, delimiter: str = ",") -> Iterator[Entry]:
    prev = reader.line_num
    try:
        for record in reader:
            start, prev = prev + 1, reader.line_num
            if not record:
                continue
            raw = printable_raw(delimiter.join(record))
            joined = "".join(record)
            problem = bad_utf8(joined)
            if problem:
                yield Entry(start, None, raw, "FT602", problem)
            elif "\x00" in joined:
                yield Entry(start, None, raw, "FT601", "the CSV line contains a NUL control character")
            elif len(record) > len(header):
                yield Entry(start, None, raw, "FT613", f"row has {len(record)} cells but the header has "
                                                      f"{len(header)} columns (ragged row)")
            elif len(record) < len(header):
                yield Entry(start, None, raw, "FT613", f"row has {len(record)} cells but the header has "
                                                      f"{len(header)} columns: column {header[len(record)]!r} "
                                                      "is missing")
            else:
                yield Entry(start, dict(zip(header, record, strict=True)), raw)
    except csv.Error as e:
        out.fatal = FileProblem("FT601", f"CSV error: {e} (an unclosed quote runs to the end of the file)",
                                prev + 1)


def _csv_file(path: Path, required: list[str]) -> ReadResult:
    """read_csv over the open file; the file closes when its rows are consumed (or the result is dropped)."""
    f = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115 - closed below
    out = read_csv(f, required, "\t" if path.suffix.lower() == ".tsv" else ",")
    if isinstance(out.entries, list):
        f.close()
        return out
    rows = out.entries

    def closing() -> Iterator[Entry]:
        with f:
            yield from rows
    out.entries = closing()
    return out


def read_parquet(path: Path) -> ReadResult:
    """Parquet via pyarrow (imported here, lazily). Line = 1-based row number. The footer is read now; the
    rows batch by batch as they are consumed (a file larger than memory streams through). A corrupt page
    found on the way sets `fatal` at its first row: the rows before it were read."""
    out = ReadResult()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        out.fatal = FileProblem("FT614", "pyarrow is not installed, so this parquet file cannot be read")
        return out
    try:
        f = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        out.fatal = FileProblem("FT614", f"cannot read the parquet file (corrupt or not parquet): {e}")
        return out
    out.columns = list(f.schema_arrow.names)
    out.entries = _parquet_rows(f, out)
    return out


def _parquet_rows(f, out: ReadResult) -> Iterator[Entry]:
    i = 0
    try:
        for batch in f.iter_batches(batch_size=8192):
            for row in batch.to_pylist():
                i += 1
                yield Entry(i, row, json.dumps(row, default=str, ensure_ascii=False))
    except Exception as e:  # noqa: BLE001 - a corrupt page: pyarrow raises several types
        out.fatal = FileProblem("FT614", f"cannot read the parquet file (corrupt or not parquet): {e}", i + 1)


def read_file(path: Path, kind: str, required: list[str]) -> ReadResult:
    """Read a local source file by kind (jsonl / chat_jsonl / json / csv / parquet)."""
    if kind == "parquet":
        return read_parquet(path)
    if kind in ("jsonl", "chat_jsonl", "csv"):  # read lazily: only the encoding is checked up front
        with open(path, "rb") as f:
            _, problem = decode(f.read(4))
        if problem is not None:
            return ReadResult(fatal=problem)
        return _csv_file(path, required) if kind == "csv" else ReadResult(entries=_jsonl_lines(path))
    text, problem = decode(path.read_bytes())
    if problem is not None:
        return ReadResult(fatal=problem)
    assert text is not None
    return read_json(text)
