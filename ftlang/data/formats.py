"""Row formats: mapping a file's columns onto canonical rows, checking them, and converting between them.

Canonical rows (what every step sees):
  instruction     {"instruction": str, "input": str, "output": str}   (input may be "")
  chat            {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
  completion      {"text": str}
  classification  {"text": str, "label": str}
ShareGPT rows ({"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}) become chat rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ftlang.data.rows import public

DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "instruction": {"instruction": "instruction", "input": "input", "output": "output"},
    "chat": {"messages": "messages"},
    "completion": {"text": "text"},
    "classification": {"text": "text", "label": "label"},
}
#: canonical fields a row must have (input is optional)
REQUIRED: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "output"),
    "chat": ("messages",),
    "completion": ("text",),
    "classification": ("text", "label"),
}
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "chatgpt": "assistant"}


class RowError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def field_map(fmt: str, fields: Mapping[str, str]) -> dict[str, str]:
    out = dict(DEFAULT_FIELDS[fmt])
    out.update(fields)
    return out


def required_columns(fmt: str, fields: Mapping[str, str]) -> list[str]:
    """Columns a CSV header must have for this format."""
    fm = field_map(fmt, fields)
    return [fm[f] for f in REQUIRED[fmt] if fmt != "chat"]


def _string(value: Any, column: str, canonical: str, *, required: bool) -> str:
    label = column if column == canonical else f"{column} ({canonical})"
    if value is None:
        if required:
            raise RowError("FT604", f"field {label!r} is null (missing value)")
        return ""
    if isinstance(value, bool) or not isinstance(value, str):
        raise RowError("FT605", f"field {label!r} has type {type(value).__name__}, expected a string")
    if required and not value.strip():
        raise RowError("FT604", f"field {label!r} is empty (blank)")
    return value


def _get(row: Mapping[str, Any], column: str, canonical: str) -> Any:
    if column not in row:
        have = ", ".join(sorted(map(str, row))) or "none"
        label = column if column == canonical else f"{column} ({canonical})"
        raise RowError("FT603", f"missing required field {label!r} (the row has: {have})")
    return row[column]


def normalize(row: Any, fmt: str, fields: Mapping[str, str], labels: list[str] | None = None) -> dict:
    """A canonical row, or RowError(code, message) naming the first problem."""
    if not isinstance(row, dict):
        kind = {list: "a list", str: "a string", type(None): "null"}.get(type(row), type(row).__name__)
        raise RowError("FT612", f"row is {kind}, not a JSON object (dict / mapping)")
    fm = field_map(fmt, fields)
    if fmt == "instruction":
        instruction = _string(_get(row, fm["instruction"], "instruction"), fm["instruction"], "instruction",
                              required=True)
        output = _string(_get(row, fm["output"], "output"), fm["output"], "output", required=True)
        inp = _string(row.get(fm["input"]), fm["input"], "input", required=False)
        return {"instruction": instruction, "input": inp, "output": output}
    if fmt == "chat":
        return {"messages": _messages(row, fm)}
    if fmt == "completion":
        return {"text": _string(_get(row, fm["text"], "text"), fm["text"], "text", required=True)}
    if fmt == "classification":
        text = _string(_get(row, fm["text"], "text"), fm["text"], "text", required=True)
        label = _get(row, fm["label"], "label")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise RowError("FT605", f"field {fm['label']!r} (label) has type {type(label).__name__}, "
                                    "expected a string or an integer")
        label = str(label)
        if labels and label not in labels:
            raise RowError("FT616", f"unknown label {label!r}; the task's labels are {', '.join(labels)}")
        return {"text": text, "label": label}
    raise RowError("FT603", f"unknown format {fmt!r}")


def _messages(row: Mapping[str, Any], fm: Mapping[str, str]) -> list[dict[str, str]]:
    column = fm["messages"]
    if column == "messages" and "messages" not in row and "conversations" in row:
        column = "conversations"  # ShareGPT files need no mapping
    turns = _get(row, column, "messages")
    if not isinstance(turns, list):
        raise RowError("FT605", f"field {column!r} has type {type(turns).__name__}, expected a list of messages")
    if not turns:
        raise RowError("FT604", f"field {column!r} is an empty list: no messages")
    out = []
    for i, m in enumerate(turns, 1):
        if not isinstance(m, dict):
            raise RowError("FT605", f"message {i} is {type(m).__name__}, expected an object with role and content")
        sharegpt = "role" not in m and "content" not in m and ("from" in m or "value" in m)
        role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
        if role_key not in m:
            raise RowError("FT603", f"message {i} is missing required field {role_key!r}")
        role = m[role_key]
        if not isinstance(role, str):
            raise RowError("FT605", f"message {i}: {role_key!r} has type {type(role).__name__}, expected a string")
        if sharegpt:
            if role not in SHAREGPT_ROLES:
                raise RowError("FT606", f"message {i}: unknown role from = {role!r}; "
                                        "expected system, human or gpt")
            role = SHAREGPT_ROLES[role]
        elif role not in ROLES:
            raise RowError("FT606", f"message {i}: unknown role {role!r}; expected system, user or assistant")
        if content_key not in m:
            raise RowError("FT603", f"message {i} is missing required field {content_key!r}")
        content = m[content_key]
        if content is None:
            raise RowError("FT604", f"message {i} ({role}): content is null")
        if not isinstance(content, str):
            raise RowError("FT605", f"message {i} ({role}): content has type {type(content).__name__}, "
                                    "expected a string")
        if not content.strip():
            raise RowError("FT604", f"message {i} ({role}): content is empty")
        out.append({"role": role, "content": content})
    check_order(out)
    return out


def check_order(messages: list[dict[str, str]]) -> None:
    """Optional system first, then user/assistant alternating from user, ending on an assistant turn."""
    expected = "user"
    for i, m in enumerate(messages, 1):
        role = m["role"]
        if role == "system":
            if i != 1:
                raise RowError("FT607", f"roles out of order: system message at turn {i}; a system message may "
                                        "only come first")
            continue
        if role != expected:
            first = i == 1 or (i == 2 and messages[0]["role"] == "system")
            where = f"the first turn must be user, got {role}" if first else \
                f"turn {i} is {role} after {messages[i - 2]['role']}"
            raise RowError("FT607", f"roles out of order: {where}; turns must alternate user / assistant")
        expected = "assistant" if role == "user" else "user"
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("FT607", "no assistant turn: there is nothing to train on")
    if messages[-1]["role"] != "assistant":
        raise RowError("FT607", "the chat ends with a user turn; the last turn must be the assistant's")


# ---------------------------------------------------------------------------- conversions


def to_chat(row: dict, fmt: str, system: str | None = None) -> dict:
    """instruction → chat (input appended to the user turn after a blank line); chat: set/replace system."""
    if fmt == "chat":
        messages = [m for m in row["messages"] if m["role"] != "system"] if system is not None else row["messages"]
        head = [{"role": "system", "content": system}] if system is not None else []
        out = {"messages": head + list(messages)}
        if "_input_at" in row:
            out["_input_at"] = row["_input_at"]
        return out
    if fmt != "instruction":
        raise RowError("FT624", f"to_chat() needs instruction or chat rows, not {fmt}")
    user = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    out = {"messages": messages}
    # the split point keeps instruction → chat → instruction lossless even when the input has blank lines
    if row.get("input"):
        out["_input_at"] = len(row["instruction"])
    return out


def to_instruction(row: dict, fmt: str) -> dict:
    if fmt == "instruction":
        return row
    if fmt != "chat":
        raise RowError("FT624", f"to_instruction() needs chat rows, not {fmt}")
    turns = [m for m in row["messages"] if m["role"] != "system"]
    if len(turns) != 2:
        raise RowError("FT615", f"to_instruction() needs a single-turn chat; this row has {len(turns)} "
                                "user/assistant turns (multi-turn)")
    user, assistant = turns[0]["content"], turns[1]["content"]
    at = row.get("_input_at")
    if isinstance(at, int) and user[at:at + 2] == "\n\n":
        return {"instruction": user[:at], "input": user[at + 2:], "output": assistant}
    return {"instruction": user, "input": "", "output": assistant}


def to_completion(row: dict, fmt: str, render) -> dict:
    """Any row → {"text": ...} through `render(fields) -> str` (a sandboxed jinja2 template)."""
    if fmt == "completion":
        return row
    return {"text": render(public(row))}


def prompt_fields(row: dict, fmt: str) -> list[tuple[str, int | None]]:
    """Where augmentation may rewrite text: the prompt side only, so targets stay as written."""
    if fmt == "instruction":
        return [("instruction", None), ("input", None)]
    if fmt == "chat":
        return [("messages", i) for i, m in enumerate(row["messages"]) if m["role"] == "user"]
    return [("text", None)]
