"""Editor support and committed generated files: the TextMate grammar, the plan JSON schema, the hooks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GRAMMAR = REPO / "editors" / "ftlang.tmLanguage.json"


def _patterns(node, where: str = "$"):
    """Every (json path, regex) in a TextMate grammar."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end") and isinstance(value, str):
                yield f"{where}.{key}", value
            else:
                yield from _patterns(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _patterns(value, f"{where}[{i}]")


def _scopes(grammar: dict, text: str) -> dict[str, str]:
    """A rough tokenizer over the grammar's flat `match` rules: first rule that matches at a position wins."""
    rules: list[tuple[re.Pattern, str]] = []

    def collect(node) -> None:
        for inc in node.get("patterns", []):
            if "include" in inc:
                collect(grammar["repository"][inc["include"].lstrip("#")])
            elif "match" in inc:
                name = inc.get("name") or inc.get("captures", {}).get("1", {}).get("name", "")
                rules.append((re.compile(inc["match"]), name))
            elif "begin" in inc:
                rules.append((re.compile(inc["begin"] + r'(?:[^"\\]|\\.)*"'), inc["name"]))
        if "match" in node:
            name = node.get("name") or node.get("captures", {}).get("1", {}).get("name", "")
            rules.append((re.compile(node["match"]), name))
        if "begin" in node:
            rules.append((re.compile(node["begin"] + r'(?:[^"\\]|\\.)*"'), node["name"]))

    collect(grammar)
    found: dict[str, str] = {}
    for line in text.splitlines():  # TextMate matches one line at a time
        pos = 0
        while pos < len(line):
            for rx, name in rules:
                m = rx.match(line, pos)
                if m and m.end() > pos:
                    found.setdefault(m.group(0).strip(), name)
                    pos = m.end()
                    break
            else:
                pos += 1
    return found


def test_grammar_is_valid_json_with_the_textmate_keys():
    grammar = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    assert grammar["scopeName"] == "source.ftlang"
    assert grammar["fileTypes"] == ["ft"]
    for inc in grammar["patterns"]:
        assert inc["include"].lstrip("#") in grammar["repository"]


def test_every_grammar_regex_compiles_in_python():
    grammar = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    patterns = list(_patterns(grammar))
    assert len(patterns) > 15
    for where, rx in patterns:
        try:
            re.compile(rx)
        except re.error as e:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"{where}: {rx!r}: {e}")


def test_grammar_highlights_a_recipe():
    grammar = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    text = (REPO / "examples" / "quickstart.ft").read_text(encoding="utf-8")
    scopes = _scopes(grammar, text)
    first_line = text.splitlines()[0]
    assert first_line.startswith("#") and scopes[first_line].startswith("comment.")
    assert scopes['"stdlib/models/smollm2.ft"'].startswith("string.")
    assert scopes["2e-3"] == "constant.numeric.float.ftlang"
    assert scopes["5%"] == "constant.numeric.percent.ftlang"
    assert scopes["jsonl"] == "support.function.source.ftlang"
    assert scopes["to_chat"] == "support.function.builtin.ftlang"
    assert scopes["gate"] == "keyword.control.gate.ftlang"
    assert scopes["import"] == "keyword.control.import.ftlang"
    sizes = _scopes(grammar, "hardware { memory = 24GB }\nrecipe a extends b { x = true }")
    assert sizes["24GB"] == "constant.numeric.size.ftlang"
    assert sizes["true"] == "constant.language.boolean.ftlang"
    assert sizes["recipe a extends b"] == "keyword.declaration.recipe.ftlang"


def test_committed_plan_schema_matches_the_plan_models():
    from ftlang.plan import plan_json_schema

    committed = json.loads((REPO / "schema" / "plan.schema.json").read_text(encoding="utf-8"))
    committed.pop("$schema", None)
    committed.pop("$id", None)
    assert committed == plan_json_schema(), "regenerate: python scripts/gen_docs.py"


def test_pre_commit_hooks_run_on_ft_files():
    text = (REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    ids = re.findall(r"^- id: (\S+)$", text, flags=re.M)
    assert ids == ["ftlang-check", "ftlang-fmt"]
    assert text.count(r"files: \.ft$") == 2
    assert "entry: ftlang check" in text and "entry: ftlang fmt --check" in text


VSCODE = REPO / "editors" / "vscode"


def test_vscode_extension_declares_the_language_grammar_and_server() -> None:
    import shutil
    import subprocess

    from ftlang.cli import build_parser

    pkg = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (lang,) = pkg["contributes"]["languages"]
    assert lang["id"] == "ftlang" and lang["extensions"] == [".ft"]
    assert (VSCODE / lang["configuration"]).is_file()
    json.loads((VSCODE / lang["configuration"]).read_text(encoding="utf-8"))
    (grammar,) = pkg["contributes"]["grammars"]
    assert grammar["scopeName"] == json.loads(GRAMMAR.read_text(encoding="utf-8"))["scopeName"]
    # the one grammar file is copied in at install/package time, not duplicated in the repo
    assert "../ftlang.tmLanguage.json" in pkg["scripts"]["grammar"] and grammar["path"].endswith(
        "syntaxes/ftlang.tmLanguage.json")
    command = pkg["contributes"]["configuration"]["properties"]["ftlang.server.command"]["default"]
    _, commands = build_parser()
    assert command[0] == "ftlang" and command[1] in commands
    js = (VSCODE / pkg["main"]).read_text(encoding="utf-8")
    assert "vscode-languageclient/node" in js and "server.command" in js
    if shutil.which("node"):
        assert subprocess.run(["node", "--check", str(VSCODE / pkg["main"])]).returncode == 0
