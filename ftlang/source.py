"""Source files and spans: every AST node, plan location and diagnostic points back here."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range in a source file, with 1-based line/column of both ends."""

    file: str
    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    def merge(self, other: Span) -> Span:
        first, last = (self, other) if self.start <= other.start else (other, self)
        return Span(self.file, first.start, max(first.end, last.end), first.line, first.column,
                    last.end_line, last.end_column)

    def sort_key(self) -> tuple[str, int, int]:
        return (self.file, self.line, self.column)


class Located(Protocol):
    """What a plan `Loc` carries (declared here so this leaf does not import the plan)."""

    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...
    @property
    def end_line(self) -> int: ...
    @property
    def end_column(self) -> int: ...


def loc_span(loc: Located | None) -> Span | None:
    """A plan location as a diagnostic span (plans carry line/column, not offsets)."""
    if loc is None:
        return None
    return Span(loc.file, 0, 0, loc.line, loc.column, loc.end_line, loc.end_column)


@dataclass(frozen=True)
class SourceFile:
    """The text of one recipe (or data) file, with a line index for offset → line/column."""

    path: str
    text: str
    _line_starts: list[int] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        starts = [0]
        find = self.text.find
        i = find("\n")
        while i >= 0:  # str.find runs in C: a 10 MB file indexes in milliseconds, not a second
            starts.append(i + 1)
            i = find("\n", i + 1)
        object.__setattr__(self, "_line_starts", starts)

    @classmethod
    def read(cls, path: str | Path) -> SourceFile:
        """Read a file as UTF-8; undecodable bytes become U+FFFD so a diagnostic can still point at them."""
        return cls.decode(str(path), Path(path).read_bytes())[0]

    @classmethod
    def decode(cls, path: str, data: bytes) -> tuple[SourceFile, int | None]:
        """The text (bad bytes as U+FFFD) and the character offset of the first bad byte (None: valid UTF-8)."""
        try:
            return cls(path, data.decode("utf-8")), None
        except UnicodeDecodeError as e:
            return (cls(path, data.decode("utf-8", errors="replace")),
                    len(data[: e.start].decode("utf-8", errors="replace")))

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        idx = bisect.bisect_right(self._line_starts, offset) - 1
        return idx + 1, offset - self._line_starts[idx] + 1

    def span(self, start: int, end: int) -> Span:
        line, col = self.position(start)
        end_line, end_col = self.position(end)
        return Span(self.path, start, end, line, col, end_line, end_col)

    def line_text(self, line: int) -> str:
        if line < 1 or line > len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return self.text[start:end].rstrip("\r")

    @property
    def line_count(self) -> int:
        return len(self._line_starts)
