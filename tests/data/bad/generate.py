"""Regenerates the malformed-data corpus beside this file and its expected.json.

    python tests/data/bad/generate.py

Each case names its file, how a recipe declares it (source kind, format, field mapping), the 1-based
line the first error must point at (CSV header is line 1; JSON arrays: the line the element starts
on; parquet: the 1-based row; null: a whole-file problem with no row line) and message fragments, any
one of which the diagnostic's message must contain (case-insensitive).
The files are committed; this script documents how each was made and rebuilds them exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTR = {"instruction": "q", "output": "a"}  # the instruction files' columns are q / a


def row(q: str = "What is ftlang?", a: str = "A compiler for fine-tuning recipes.") -> str:
    return json.dumps({"q": q, "a": a})


def chat(*turns: tuple[str, str]) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns]})


MISSING_WORDS = ["missing", "required", "not found", "no field"]

GOOD_CHAT = chat(("user", "Hi"), ("assistant", "Hello!"))

CASES: list[dict] = []


def case(name: str, data: bytes | str, line: int | None, message: list[str], *, kind: str | None = None,
         format: str = "instruction", fields: dict[str, str] | None = None, **extra) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    (HERE / name).write_bytes(raw)
    kind = kind or name.rsplit(".", 1)[1]
    fields = INSTR if fields is None and format == "instruction" else (fields or {})
    CASES.append({"file": name, "kind": kind, "format": format, "fields": fields, "line": line,
                  "message": message, **extra})


def lines(*items: str, eol: str = "\n") -> str:
    return eol.join(items) + eol


def parquet(name: str, table_rows: list[dict] | None, line: int | None, message: list[str], **kw) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = HERE / name
    pq.write_table(pa.Table.from_pylist(table_rows), path)
    CASES.append({"file": name, "kind": "parquet", "format": kw.pop("format", "instruction"),
                  "fields": kw.pop("fields", INSTR), "line": line, "message": message, **kw})


def build() -> None:
    for old in HERE.iterdir():
        if old.name not in {"generate.py", "expected.json"}:
            old.unlink()

    # ------------------------------------------------------------------ jsonl, instruction format
    case("bad_json_mid.jsonl", lines(row(), row(), '{"q": "x", "a": }', row()), 3, ["json"])
    case("truncated.jsonl", lines(row(), row(), row())[:-1] + '\n{"q": "cut here", "a": "par', 4,
         ["json", "truncated", "unterminated"])
    case("missing_field.jsonl", lines(row(), json.dumps({"q": "no answer"}), row()), 2, MISSING_WORDS)
    case("empty_output.jsonl", lines(row(), row(), row(a="")), 3, ["empty"])
    case("whitespace_output.jsonl", lines(row(), row(a="   \t ")), 2, ["empty", "blank"])
    case("null_output.jsonl", lines(row(), json.dumps({"q": "x", "a": None})), 2, ["null", "missing", "none"])
    case("number_output.jsonl", lines(row(), json.dumps({"q": "x", "a": 42})), 2, ["type", "string", "str"])
    case("list_instruction.jsonl", lines(row(), row(), json.dumps({"q": ["a", "b"], "a": "y"})), 3,
         ["type", "string", "str"])
    case("latin1.jsonl", lines(row(), row()).encode() + '{"q": "café", "a": "crème"}\n'.encode("latin-1"), 3,
         ["utf-8", "utf8", "decode", "encoding"])
    case("utf16_bom.jsonl", lines(row(), row()).encode("utf-16"), 1, ["utf-8", "utf8", "decode", "encoding", "utf-16"])
    case("utf8_bom.jsonl", b"\xef\xbb\xbf" + lines(row(), row(), json.dumps({"q": "x"})).encode(), 3,
         MISSING_WORDS)
    case("crlf.jsonl", lines(row(), row(), json.dumps({"q": "x", "a": ""}), row(), eol="\r\n"), 3, ["empty"])
    case("nul_byte.jsonl", lines(row(), '{"q": "nul\x00here", "a": "b"}', row()), 2,
         ["nul", "control", "json", "invalid"])
    case("huge_line.jsonl", lines(row(), row(), row(a="x" * 200_000), row()), 3,
         ["long", "chars", "length", "size"], max_row_chars=10_000)
    case("duplicate_keys.jsonl", lines(row(), '{"q": "x", "a": "", "a": "hidden second answer"}'), 2,
         ["duplicate"])
    case("empty_file.jsonl", b"", None, ["empty", "no rows"])
    case("blank_lines_only.jsonl", "\n  \n\t\n\n", None, ["empty", "no rows"])
    case("not_object.jsonl", lines(row(), "[1, 2, 3]", row()), 2, ["object", "dict", "mapping"])
    case("string_row.jsonl", lines(row(), '"just a string"'), 2, ["object", "dict", "mapping"])
    case("mixed_formats.jsonl", lines(row(), GOOD_CHAT, row()), 2, MISSING_WORDS)
    case("csv_in_jsonl.jsonl", lines("q,a", "What is it?,A tool"), 1, ["json"])
    case("wrong_field_name.jsonl", lines(json.dumps({"question": "x", "answer": "y"})), 1, MISSING_WORDS)

    # ------------------------------------------------------------------ jsonl, chat format
    case("chat_wrong_role.jsonl", lines(GOOD_CHAT, chat(("user", "Hi"), ("bot", "Hello"))), 2,
         ["role", "bot"], format="chat")
    case("chat_roles_out_of_order.jsonl",
         lines(GOOD_CHAT, GOOD_CHAT, chat(("user", "Hi"), ("user", "Again"), ("assistant", "Hey"))), 3,
         ["order", "altern", "role"], format="chat")
    case("chat_assistant_first.jsonl", lines(chat(("assistant", "I speak first"), ("user", "ok"))), 1,
         ["order", "altern", "role", "first"], format="chat")
    case("chat_system_late.jsonl", lines(GOOD_CHAT, chat(("user", "Hi"), ("system", "late"), ("assistant", "x"))), 2,
         ["order", "system", "role"], format="chat")
    case("chat_empty_content.jsonl", lines(GOOD_CHAT, chat(("user", "Hi"), ("assistant", ""))), 2,
         ["empty"], format="chat")
    case("chat_null_content.jsonl",
         lines(GOOD_CHAT, json.dumps({"messages": [{"role": "user", "content": None},
                                                   {"role": "assistant", "content": "x"}]})), 2,
         ["null", "missing", "none", "type", "content"], format="chat")
    case("chat_missing_messages.jsonl", lines(GOOD_CHAT, json.dumps({"text": "hello"})), 2,
         MISSING_WORDS, format="chat")
    case("chat_messages_not_list.jsonl", lines(GOOD_CHAT, json.dumps({"messages": "user: hi"})), 2,
         ["list", "type", "array"], format="chat")
    case("chat_empty_messages.jsonl", lines(GOOD_CHAT, json.dumps({"messages": []})), 2,
         ["empty", "no messages", "no turns"], format="chat")
    case("chat_missing_role.jsonl",
         lines(GOOD_CHAT, json.dumps({"messages": [{"content": "Hi"}, {"role": "assistant", "content": "x"}]})), 2,
         MISSING_WORDS, format="chat")
    case("chat_no_assistant.jsonl", lines(GOOD_CHAT, chat(("system", "Be nice"), ("user", "Hi"))), 2,
         ["assistant"], format="chat")
    case("sharegpt_bad_from.jsonl",
         lines(json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}),
               json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "x"}]})),
         2, ["role", "robot", "from"], format="chat", fields={"messages": "conversations"})

    # ------------------------------------------------------------------ jsonl, completion format
    case("completion_missing_text.jsonl", lines(json.dumps({"text": "ok"}), json.dumps({"body": "x"})), 2,
         MISSING_WORDS, format="completion", fields={"text": "text"})
    case("completion_wrong_type.jsonl", lines(json.dumps({"text": "ok"}), json.dumps({"text": {"a": 1}})), 2,
         ["type", "string", "str"], format="completion", fields={"text": "text"})

    # ------------------------------------------------------------------ csv (header is line 1)
    case("csv_missing_column.csv", lines("q,answer", "What?,That"), 1, ["missing", "column", "required"])
    case("csv_empty_cell.csv", lines("q,a", "What?,That", "Why?,", "How?,So"), 3, ["empty"])
    case("csv_ragged_row.csv", lines("q,a", "What?,That", "Why?,Because,extra,cells", "How?,So"), 3,
         ["field", "column", "cells", "ragged"])
    case("csv_short_row.csv", lines("q,a", "What?,That", "How?,So", "lonely"), 4,
         ["field", "column", "missing", "cells", "empty"])
    case("csv_latin1.csv", lines("q,a", "What?,That").encode() + "Où?,Là\n".encode("latin-1"), 3,
         ["utf-8", "utf8", "decode", "encoding"])
    case("csv_unclosed_quote.csv", lines("q,a", "What?,That", 'Why?,"never closed', "How?,So"), 3,
         ["quote", "eof", "end of", "csv"])
    case("csv_crlf_bom.csv", b"\xef\xbb\xbf" + lines("q,a", "What?,That", "Why?,Because", "How?,", eol="\r\n").encode(),
         4, ["empty"])
    case("csv_header_only.csv", lines("q,a"), None, ["empty", "no rows"])
    case("csv_nul_byte.csv", lines("q,a", "What?,That", "Wh\x00y?,Because"), 3, ["nul", "csv", "control", "line contains"])

    # ------------------------------------------------------------------ json (an array of objects)
    case("json_not_array.json", json.dumps({"rows": [{"q": "x", "a": "y"}]}, indent=1) + "\n", 1,
         ["list", "array"])
    case("json_truncated.json", '[\n  {"q": "x", "a": "y"},\n  {"q": "x", "a": "y"},\n  {"q": "cut', 4,
         ["json", "unterminated", "truncated"])
    case("json_null_element.json", '[\n  {"q": "x", "a": "y"},\n  null,\n  {"q": "x", "a": "y"}\n]\n', 3,
         ["object", "null", "dict", "mapping"])
    case("json_missing_field.json",
         '[\n  {"q": "x", "a": "y"},\n  {"q": "x", "a": "y"},\n  {"q": "no answer"}\n]\n', 4, MISSING_WORDS)
    case("json_trailing_comma.json", '[\n  {"q": "x", "a": "y"},\n  {"q": "x", "a": "y"},\n]\n', 4,
         ["json", "expecting", "comma"])
    case("json_empty_array.json", "[]\n", None, ["empty", "no rows"])

    # ------------------------------------------------------------------ parquet (line = 1-based row)
    good = {"q": "What?", "a": "That"}
    parquet("parquet_null.parquet", [good, good, {"q": "Why?", "a": None}, good], 3, ["null", "missing", "none", "empty"])
    parquet("parquet_empty_string.parquet", [good, {"q": "Why?", "a": ""}], 2, ["empty"])
    parquet("parquet_wrong_type.parquet", [{"q": "x", "a": 1}, {"q": "y", "a": 2}], 1, ["type", "string", "str"])
    parquet("parquet_missing_column.parquet", [{"q": "x", "answer": "y"}], 1, MISSING_WORDS)
    parquet("parquet_no_rows.parquet", [good], None, ["empty", "no rows"])
    _truncate_to_zero_rows(HERE / "parquet_no_rows.parquet")
    blob = (HERE / "parquet_null.parquet").read_bytes()
    case("parquet_truncated.parquet", blob[: len(blob) // 2], None, ["parquet", "corrupt", "read", "magic"],
         kind="parquet")
    case("jsonl_as_parquet.parquet", lines(row(), row()), None, ["parquet", "corrupt", "read", "magic"],
         kind="parquet")
    case("parquet_as_jsonl.jsonl", blob, 1, ["utf-8", "utf8", "decode", "encoding", "json"])

    (HERE / "expected.json").write_text(json.dumps({c["file"]: {k: v for k, v in c.items() if k != "file"}
                                                    for c in CASES}, indent=1) + "\n")


def _truncate_to_zero_rows(path: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    pq.write_table(table.slice(0, 0), path)


if __name__ == "__main__":
    build()
    print(f"{len(CASES)} cases written to {HERE}")
