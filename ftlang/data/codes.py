"""The data stage's stable diagnostic codes (FT6xx) and the one helper that positions a row problem.

A row problem points at the DATA file and line; its notes name the recipe line that declared the source,
so `path:line: message` and `declared here: recipe.ft:L:C` always come together.
"""

from __future__ import annotations

from ftlang.diagnostics import Diagnostic, Severity
from ftlang.plan import Loc
from ftlang.source import Span

#: code → one-line explanation (for `ftlang explain`)
CODES: dict[str, str] = {
    "FT601": "A row is not valid JSON (or the JSON array / CSV structure around it is broken).",
    "FT602": "A data file is not UTF-8 (latin-1, UTF-16, binary ...); ftlang reads UTF-8 only.",
    "FT603": "A row lacks a field its format requires (check `fields { ... }` for the column names).",
    "FT604": "A required field is empty or only whitespace: there is nothing to train on.",
    "FT605": "A field has the wrong type (e.g. a number or list where a string is expected).",
    "FT606": "A chat message has a role that is not system/user/assistant (ShareGPT: system/human/gpt).",
    "FT607": "Chat roles out of order: optional system first, then user and assistant alternating.",
    "FT608": "A row is longer than the source's max_row_chars.",
    "FT609": "A data source has no rows at all.",
    "FT610": "More rows were skipped than `on_error = skip(max = ...)` allows.",
    "FT611": "A JSON object repeats a key: only one of the values would be used.",
    "FT612": "A row is not a JSON object.",
    "FT613": "A CSV row has a different number of cells than the header (or the header lacks a column).",
    "FT614": "A parquet file cannot be read (or pyarrow is not installed).",
    "FT615": "to_instruction() needs single-turn chats (one user turn and one assistant turn).",
    "FT616": "A classification label is not one of the task's labels.",
    "FT617": "The end-of-turn / EOS token is not inside the trained labels: the model would never learn to stop.",
    "FT618": "A row has no trainable token left after truncation to max_seq_len.",
    "FT619": "A data path does not exist or escapes the project root.",
    "FT620": "A filter expression failed on a row.",
    "FT621": "A chat template could not be loaded or rendered.",
    "FT622": "An hf_dataset could not be loaded.",
    "FT623": "An augmentation failed (model loading, WordNet, ...).",
    "FT624": "A pipeline step refers to a dataset that does not exist or has an incompatible format.",
    "FT625": "A split or step left a dataset empty.",
    "FT626": "A row has no trainable tokens (every label is masked).",
    "FT627": "hf_dataset sources are not fetched by `check --data`; they are validated by `run`.",
}


def row_span(path: str, line: int, column: int = 1) -> Span:
    """A span at one line of a data file (character offsets are unknown and unused there)."""
    line = max(1, line)
    return Span(path, 0, 0, line, column, line, column)


def declared_note(loc: Loc | None, name: str) -> tuple[str, ...]:
    if loc is None:
        return (f"source `{name}` has no recipe location",)
    return (f"declared here: {loc.file}:{loc.line}:{loc.column} (data {name})",)


def row_problem(code: str, message: str, path: str, line: int, *, loc: Loc | None, source: str,
                help: str | None = None, severity: Severity = Severity.ERROR) -> Diagnostic:
    return Diagnostic(code, severity, message, row_span(path, line), help or _HELP.get(code),
                      declared_note(loc, source))


_HELP: dict[str, str] = {
    "FT601": "fix the JSON on this line (one object per line for jsonl), or use on_error = skip(max = N)",
    "FT602": "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
    "FT603": "add the field, or map your column names with fields { instruction = \"...\", output = \"...\" }",
    "FT604": "fill in the field or drop the row (on_error = skip(max = N) quarantines it)",
    "FT605": "make the field a string",
    "FT606": "use role system, user or assistant (ShareGPT: from = system, human or gpt)",
    "FT607": "order turns as: optional system, then user, assistant, user, assistant ...",
    "FT608": "shorten the row or raise max_row_chars",
    "FT609": "point the source at a file with rows",
    "FT610": "fix the rows listed in the quarantine file, or raise skip(max = ...)",
    "FT611": "keep one value per key",
    "FT612": "each row must be a JSON object such as {\"instruction\": ..., \"output\": ...}",
    "FT613": "make every row have as many cells as the header (quote cells that contain commas)",
    "FT614": "check the file is a complete parquet file (pip install pyarrow to read parquet)",
    "FT615": "keep the chats single-turn, or train on chat format instead of converting",
    "FT616": "use one of the task's labels, or add the label to the task",
    "FT617": "use a template that keeps the end-of-turn token inside the assistant turn (e.g. chatml)",
    "FT618": "raise max_seq_len or shorten the prompt",
    "FT619": "keep data inside the project (the folder with .git or pyproject.toml), or pass --allow-outside",
}
