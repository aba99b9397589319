"""The parser's and the formatter's codes (FT0xx)."""

from __future__ import annotations

from ftlang.codes.model import Code, Stage

CODES: tuple[Code, ...] = (
    Code("FT001", Stage.SYNTAX, "unexpected token",
         "The parser found something it cannot use at this point."),
    Code("FT002", Stage.SYNTAX, "unterminated string",
         "A string must close with \" on the line where it starts; write \\n for a newline inside it."),
    Code("FT003", Stage.SYNTAX, "unclosed bracket",
         "A '{', '[' or '(' is never closed before the end of the file."),
    Code("FT004", Stage.SYNTAX, "invalid character",
         "Recipes are made of names, numbers, strings, brackets and operators; other characters are allowed "
         "only inside strings and comments."),
    Code("FT005", Stage.SYNTAX, "invalid escape in a string",
         "The escapes are \\\" \\\\ \\/ \\n \\t \\r \\b \\f and \\uXXXX."),
    Code("FT006", Stage.SYNTAX, "number out of range",
         "A number too large to represent (or with more than 4000 digits)."),
    Code("FT007", Stage.SYNTAX, "nesting too deep",
         "Blocks, lists, calls and expressions may nest at most 100 levels."),
    Code("FT008", Stage.SYNTAX, "file too large",
         "A recipe file may hold at most 12 million characters."),
    Code("FT009", Stage.SYNTAX, "positional argument after a keyword argument",
         "Write positional arguments first, f(x, key = v)."),
    Code("FT010", Stage.SYNTAX, "missing '='",
         "A key and its value are written `key = value`."),
    Code("FT011", Stage.SYNTAX, "missing value",
         "A value (number, string, name, list or call) must follow '='."),
    Code("FT012", Stage.SYNTAX, "unmatched closing bracket",
         "A '}', ']' or ')' with no opening bracket before it."),
    Code("FT013", Stage.SYNTAX, "data source is not a call",
         "A data source must be a call such as jsonl(\"file.jsonl\") or hf_dataset(\"org/name\")."),
    Code("FT014", Stage.SYNTAX, "expected a statement",
         "A block holds `key = value`, `name { ... }`, `data`, `dataset`, `gate`, `forgetting` or `alias` "
         "statements."),
    Code("FT015", Stage.SYNTAX, "expected a top-level item",
         "A file holds `import`, `param`, `recipe` and `model_card`."),
    Code("FT016", Stage.FORMAT, "cannot read or write a file",
         "A file given to `ftlang fmt` is missing or unreadable, or it could not be written (e.g. a full disk)."),
    Code("FT017", Stage.SYNTAX, "not valid UTF-8",
         "A recipe is UTF-8 text. The error points at the first byte that is not (a file saved as Latin-1 or "
         "Windows-1252, or binary data); nothing in the file is checked until it is fixed, and `ftlang fmt` "
         "leaves such a file untouched rather than replace its bytes."),
    Code("FT018", Stage.FORMAT, "formatting would change the meaning",
         "The formatter could not lay the file out without changing its meaning or losing a comment; the file "
         "is left as it is. A formatter bug: please report it."),
)
