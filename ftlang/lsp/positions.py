"""Offsets ↔ LSP positions.

ftlang spans count characters (Python str indices) on lines split at "\\n"; LSP positions count code
units of the negotiated encoding (UTF-16 unless the client offers another). Every conversion clamps,
so a stale or hostile position never raises.
"""

from __future__ import annotations

from lsprotocol import types as T

from ftlang.source import SourceFile, Span

_UNITS = {"utf-8": lambda s: len(s.encode("utf-8", "surrogatepass")),
          "utf-16": lambda s: len(s.encode("utf-16-le", "surrogatepass")) // 2,
          "utf-32": len}


class Positions:
    """Position arithmetic for one text in one encoding."""

    def __init__(self, source: SourceFile, encoding: str = "utf-16") -> None:
        self.source = source
        self._units = _UNITS.get(str(encoding), _UNITS["utf-16"])

    def _line_start(self, line0: int) -> int:
        starts = self.source._line_starts
        return starts[max(0, min(line0, len(starts) - 1))]

    def position(self, offset: int) -> T.Position:
        line, col = self.source.position(offset)
        text = self.source.line_text(line)[: col - 1]
        return T.Position(line=line - 1, character=col - 1 if text.isascii() else self._units(text))

    def offset(self, pos: T.Position) -> int:
        """The character offset of a client position (clamped to its line and to the text)."""
        starts = self.source._line_starts
        if pos.line >= len(starts):
            return len(self.source.text)
        start = self._line_start(pos.line)
        line = self.source.line_text(pos.line + 1)
        want = max(0, pos.character)
        if line.isascii():
            return start + min(want, len(line))
        units = 0
        for i, ch in enumerate(line):
            if units >= want:
                return start + i
            units += self._units(ch)
        return start + len(line)

    def range(self, start: int, end: int) -> T.Range:
        return T.Range(start=self.position(start), end=self.position(max(start, end)))

    def span_range(self, span: Span | None) -> T.Range:
        if span is None:
            return T.Range(start=T.Position(line=0, character=0), end=T.Position(line=0, character=0))
        return self.range(span.start, span.end)

    def line_end(self, line0: int) -> T.Position:
        return self.position(self._line_start(line0) + len(self.source.line_text(line0 + 1)))

    def full_range(self) -> T.Range:
        return self.range(0, len(self.source.text))


def contains(span: Span | None, offset: int) -> bool:
    """A span holds an offset at its start, inside, or right at its end (the cursor after a word)."""
    return span is not None and span.start <= offset <= span.end
