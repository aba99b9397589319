"""The parser: every LANGUAGE.md snippet parses to the expected AST; syntax errors are positioned."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftlang.codes import Stage, lookup
from ftlang.source import SourceFile
from ftlang.syntax import ast
from ftlang.syntax.parser import parse, parse_text

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.ft"))


def ok(text: str) -> ast.Module:
    module, diags = parse_text(text)
    assert diags == [], [(d.code, d.message, d.span) for d in diags]
    assert module is not None
    return module


def body(text: str) -> tuple[ast.Stmt, ...]:
    recipe = ok(f"recipe r {{\n{text}\n}}").items[0]
    assert isinstance(recipe, ast.Recipe)
    return recipe.body


def value(text: str) -> ast.Value:
    (stmt,) = body(f"x = {text}")
    assert isinstance(stmt, ast.Assign)
    return stmt.value


def err(text: str):
    module, diags = parse_text(text)
    assert module is None
    assert diags, "a syntax error must produce a diagnostic"
    for d in diags:
        assert lookup(d.code).stage is Stage.SYNTAX and d.span is not None and d.span.line >= 1 and d.help
    return diags


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_parses(path: Path) -> None:
    module, diags = parse(SourceFile.read(path))
    assert diags == []
    assert module is not None and module.items and module.path == str(path)


def test_corpus_is_complete() -> None:
    names = {p.name for p in CORPUS}
    assert {"support_bot.ft", "base.ft", "faq.ft", "model_card_llama2_7b.ft"} <= names
    assert len([n for n in names if n.startswith("method_")]) == 6
    assert len([n for n in names if n.startswith("reject_")]) == 5
    assert len([n for n in names if n.startswith("source_")]) == 2


def test_support_bot_shape() -> None:
    module, _ = parse(SourceFile.read(Path(__file__).parent / "corpus" / "support_bot.ft"))
    assert module is not None
    imp, param, recipe = module.items
    assert isinstance(imp, ast.Import) and imp.path.value == "stdlib/models/llama2.ft"
    assert isinstance(param, ast.Param) and param.name == "lr"
    assert isinstance(param.value, ast.Float) and param.value.value == 2e-4 and param.value.text == "2e-4"
    assert isinstance(recipe, ast.Recipe) and recipe.name == "support_bot" and recipe.extends is None
    kinds = [type(s).__name__ + ":" + getattr(s, "kind", getattr(s, "name", "")) for s in recipe.body]
    assert kinds == ["Assign:", "DataDecl:tickets", "DataDecl:general", "DatasetDecl:train", "Block:split",
                     "Block:method", "Block:train", "Block:hardware", "Block:eval", "Block:export"]
    tickets = recipe.body[1]
    assert isinstance(tickets, ast.DataDecl) and isinstance(tickets.source, ast.Call)
    assert tickets.source.name == "jsonl" and tickets.body is not None
    on_error = tickets.body[2]
    assert isinstance(on_error, ast.Assign) and isinstance(on_error.value, ast.Call)
    assert on_error.value.kwarg("max").value == ast.Percent(on_error.value.kwarg("max").value.span, 0.01, "1%")
    pipeline = recipe.body[3]
    assert isinstance(pipeline, ast.DatasetDecl)
    assert [s.name for s in pipeline.stages] == ["tickets", "dedupe", "filter", "to_chat", "augment", "mix"]
    method = recipe.body[5]
    assert isinstance(method, ast.Block) and isinstance(method.label, ast.Ident) and method.label.name == "qlora"
    assert isinstance(method.body[-1], ast.Block) and method.body[-1].kind == "quant" and method.body[-1].label is None
    export = recipe.body[-1]
    assert isinstance(export, ast.Block)
    register = export.body[1]
    assert isinstance(register, ast.Block) and isinstance(register.label, ast.Str)
    assert register.label.value == "support-bot"
    gates = [s for s in recipe.body[8].body if isinstance(s, ast.Gate)]
    assert len(gates) == 2
    assert isinstance(gates[1].expr, ast.BoolOp) and gates[1].expr.op == "and"
    assert isinstance(gates[1].expr.right, ast.Not)
    # comments: own-line and trailing, with their text
    assert module.comments[0].text.startswith("# support_bot.ft") and not module.comments[0].trailing
    assert any(c.trailing and c.text == "# replay buffer" for c in module.comments)


def test_spans_point_at_source() -> None:
    text = 'recipe r {\n  method lora { r = 8 }\n  register "x" { }\n}\n'
    module = ok(text)
    recipe = module.items[0]
    method = recipe.body[0]
    assert (method.span.line, method.span.column, method.span.end_line) == (2, 3, 2)
    assert text[method.span.start:method.span.end] == "method lora { r = 8 }"
    assert text[method.kind_span.start:method.kind_span.end] == "method"
    assign = method.body[0]
    assert text[assign.key_span.start:assign.key_span.end] == "r"
    assert (assign.value.span.line, assign.value.span.column) == (2, 21)
    assert text[recipe.span.start:recipe.span.end].startswith("recipe r {") and recipe.span.end_line == 4
    assert text[recipe.name_span.start:recipe.name_span.end] == "r"


@pytest.mark.parametrize("text,expected", [
    ("42", ast.Int), ("2e-4", ast.Float), ("1.0", ast.Float), (".5", ast.Float), ('"s"', ast.Str),
    ("true", ast.Bool), ("false", ast.Bool), ("nf4", ast.Ident), ("10%", ast.Percent), ("24GB", ast.Size),
    ("[a, b]", ast.ListValue), ("f(x)", ast.Call), ("a < b", ast.Compare), ("a and b", ast.BoolOp),
    ("not a", ast.Not), ("a + b", ast.Arith), ("-x", ast.Neg), ("(a)", ast.Ident),
])
def test_value_kinds(text: str, expected: type) -> None:
    assert isinstance(value(text), expected)


def test_numbers_and_units() -> None:
    assert value("10%").value == pytest.approx(0.10)
    assert value("0.5%").value == pytest.approx(0.005)
    assert value("24GB").value == 24 * 10**9
    assert value("512MiB").value == 512 * 2**20
    assert value("1.5GiB").value == int(1.5 * 2**30)
    for unit, factor in [("B", 1), ("KB", 10**3), ("MB", 10**6), ("TB", 10**12), ("KiB", 2**10), ("TiB", 2**40)]:
        assert value(f"2{unit}").value == 2 * factor
    neg = value("-2e-4")
    assert isinstance(neg, ast.Float) and neg.value == -2e-4 and neg.text == "-2e-4"
    assert value("-3") == ast.Int(value("-3").span, -3, "-3")
    assert value("- -3").value == 3
    big = value("123456789012345678901234567890")
    assert isinstance(big, ast.Int) and big.value == 123456789012345678901234567890


def test_strings() -> None:
    assert value(r'"a\"b\\c\nd\te\u00e9"').value == 'a"b\\c\nd\te\u00e9'
    assert value(r'"\ud83d\ude00"').value == "\U0001F600"
    assert value('"héllo ✓"').value == "héllo ✓"
    assert value('""').value == ""


def test_expressions_precedence() -> None:
    v = value("a or b and not c < 1 + 2 * 3")
    assert isinstance(v, ast.BoolOp) and v.op == "or"
    right = v.right
    assert isinstance(right, ast.BoolOp) and right.op == "and"
    assert isinstance(right.right, ast.Not)
    cmp = right.right.operand
    assert isinstance(cmp, ast.Compare) and cmp.op == "<"
    assert isinstance(cmp.right, ast.Arith) and cmp.right.op == "+"
    assert isinstance(cmp.right.right, ast.Arith) and cmp.right.right.op == "*"
    left_assoc = value("a - b - c")
    assert isinstance(left_assoc.left, ast.Arith) and left_assoc.left.op == "-"
    grouped = value("(a or b) and c")
    assert isinstance(grouped, ast.BoolOp) and grouped.op == "and" and grouped.left.op == "or"
    call = value("len(output) > 0")
    assert isinstance(call, ast.Compare) and isinstance(call.left, ast.Call) and call.left.name == "len"
    for op in ("<", "<=", ">", ">=", "==", "!="):
        assert value(f"a {op} 1").op == op


def test_lists_and_calls() -> None:
    assert value("[]").items == ()
    assert len(value("[a, b,]").items) == 2
    assert len(value("[[1, 2], [3]]").items) == 2
    call = value('hf("org/name", revision = "main", trust = true,)')
    assert isinstance(call, ast.Call) and call.name == "hf" and len(call.args) == 1
    assert [k.name for k in call.kwargs] == ["revision", "trust"]
    assert call.kwarg("revision").value.value == "main" and call.kwarg("nope") is None
    assert value("f()").args == ()


def test_statement_separators_and_newlines() -> None:
    one = body("a = 1, b = 2, c { d = 3, }, e = 4,")
    two = body("a = 1\nb = 2\nc {\n d = 3\n}\ne = 4")
    three = body("a = 1 b = 2 c { d = 3 } e = 4")
    strip = [type(s).__name__ for s in one]
    assert strip == [type(s).__name__ for s in two] == [type(s).__name__ for s in three]
    (ds,) = body("dataset train = a\n  | b(x = 1)\n  | c")
    assert isinstance(ds, ast.DatasetDecl) and len(ds.stages) == 3


def test_declarations() -> None:
    data, ds, gate, forget, alias = body(
        'data d = jsonl("x") { format = chat }\n dataset t = d\n gate a > 1\n forgetting on g\n alias att = [q]')
    assert isinstance(data, ast.DataDecl) and data.name == "d" and data.body is not None
    assert isinstance(ds, ast.DatasetDecl) and ds.stages[0].name == "d"
    assert isinstance(gate, ast.Gate) and isinstance(forget, ast.Forgetting) and forget.target.name == "g"
    assert isinstance(alias, ast.AliasDecl) and alias.name == "att"
    (bare,) = body("data d = other")
    assert isinstance(bare, ast.DataDecl) and isinstance(bare.source, ast.Ident) and bare.body is None


def test_top_level_forms() -> None:
    m = ok('import "a.ft"\nparam lr = 1e-4\nrecipe b extends a { }\nmodel_card c { alias x = [y] }')
    imp, param, recipe, card = m.items
    assert isinstance(imp, ast.Import) and isinstance(param, ast.Param)
    assert isinstance(recipe, ast.Recipe) and recipe.extends is not None and recipe.extends.name == "a"
    assert isinstance(card, ast.ModelCard) and isinstance(card.body[0], ast.AliasDecl)
    assert ok("").items == () and ok("# only a comment\n").comments[0].text == "# only a comment"


def test_keywords_are_reserved() -> None:
    for text in ("recipe r { x = data }", "recipe r { train { on = 1 } }"):
        d = err(text)[0]
        assert "reserved word" in d.help, d
    d = err("recipe r { gate a <\n  gate b }")[0]
    assert "missing operand" in d.message and "reserved" not in d.help
    (b,) = body("train { on_error = data_v2, recipes = [model, cards] }")
    assert isinstance(b, ast.Block) and b.body[0].key == "on_error"


def test_crlf_and_bom() -> None:
    m = ok("\ufeffrecipe r {\r\n  a = 1 # c\r\n}\r\n")
    assert m.items[0].body[0].value.value == 1
    assert m.comments[0].text == "# c" and m.comments[0].trailing


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text,code,line,col,words", [
    ("recipe r {\n  train { lr 2e-4 }\n}", "FT010", 2, 14, "missing '='"),
    ("recipe r {\n  train { lr = }\n}", "FT011", 2, 16, "missing value"),
    ('recipe r {\n  x = "abc\n}', "FT002", 2, 7, "unterminated string"),
    ("recipe r {\n  train {\n    lr = 1\n", "FT003", 2, 9, "unclosed '{'"),
    ("recipe r { } }", "FT012", 1, 14, "unmatched '}'"),
    ("recipe r {\n  x = [a, b\n}", "FT003", 2, 7, "unclosed '['"),
    ("recipe r { x = @ }", "FT004", 1, 16, "invalid character"),
    ('recipe r { x = "\\q" }', "FT005", 1, 17, "invalid escape"),
    ("recipe r { x = 1e999 }", "FT006", 1, 16, "out of range"),
    ("recipe r { x = f(a = 1, b) }", "FT009", 1, 25, "positional argument"),
    ('recipe r {\n  data d = "x.jsonl"\n}', "FT013", 2, 12, "data source"),
    ("recipe r { 42 }", "FT014", 1, 12, "expected a statement"),
    ("train { }", "FT015", 1, 1, "top level"),
    ("recipe { }", "FT001", 1, 8, "missing name"),
    ("recipe r { gate a < }", "FT001", 1, 21, "missing operand"),
    ("recipe r { gate a < b < c }", "FT001", 1, 23, "chained"),
    ("recipe r { train { } \nrecipe s { }", "FT003", 2, 1, "'}' missing"),
])
def test_syntax_errors(text: str, code: str, line: int, col: int, words: str) -> None:
    diags = err(text)
    d = diags[0]
    assert (d.code, d.span.line, d.span.column) == (code, line, col), (d.code, d.message, d.span)
    assert words in d.message


def test_expected_one_of_in_help() -> None:
    d = err("recipe r { lr 1 }")[0]
    assert "expected one of:" in d.help and "'='" in d.help


def test_several_errors_collected() -> None:
    diags = err("recipe r {\n  a = 1 2\n  b = 3\n  c 4\n}\n")
    assert [d.span.line for d in diags] == [2, 4]
    # an error on the very next line is most likely a consequence of the first: not reported
    assert [d.span.line for d in err("recipe r {\n  a = yes please\n  register \"x\" { }\n}\n")] == [3]


def test_unclosed_paren_on_an_earlier_line() -> None:
    d = err("recipe r {\n  dataset t = d\n    | filter(len(x) > 0\n    | dedupe(exact)\n}\n")
    assert len(d) == 1 and d[0].code == "FT003" and (d[0].span.line, d[0].span.column) == (3, 13)
    assert "found '|' at <string>:4:5" in d[0].notes[0]


def test_deep_nesting_is_a_clean_error() -> None:
    for opener, closer in (("[", "]"), ("f(", ")"), ("(", ")"), ("-", ""), ("not ", "")):
        text = "recipe r { x = " + opener * 5000 + "1" + closer * 5000 + " }"
        module, diags = parse_text(text)
        assert module is None and diags[0].code == "FT007"
    assert parse_text("recipe r { x = " + "[" * 80 + "]" * 80 + " }")[0] is not None
    assert parse_text("recipe r { x = " + "[" * 150 + "]" * 150 + " }")[1][0].code == "FT007"
    unclosed = err("recipe r { x = " + "[" * 5000)
    assert unclosed[0].code == "FT003"
    long_chain = parse_text("recipe r { x = " + " + ".join(["1"] * 3000) + " }")
    assert long_chain[0] is None and long_chain[1][0].code == "FT007"


def test_huge_and_binary_inputs() -> None:
    err("recipe r { x = " + "9" * 5000 + " }")
    err("\x00\xff\ufffd")
    err("recipe r { x = 1 }" + "\x00")
    module, diags = parse_text("#" + "x" * 200_000)
    assert module is not None and diags == []


def test_error_json_has_position() -> None:
    d = err("recipe r {\n  x = \n}")[0]
    j = d.to_json()
    assert j["line"] == 3 and j["column"] == 1 and j["code"] == "FT011" and j["severity"] == "error"


def test_parse_is_reentrant_after_errors() -> None:
    err("recipe r {")
    m = ok("recipe r { a = [1] } # c")
    assert len(m.comments) == 1


# --------------------------------------------------------------------------- grammar cache & import cost


def _tables_parse(lark, text: str) -> tuple:
    def norm(node):
        if hasattr(node, "data"):
            return (str(node.data), tuple(norm(c) for c in node.children))
        return (node.type, str(node), node.start_pos)

    return norm(lark.parse(text))


def test_grammar_cache_round_trip(tmp_path, monkeypatch) -> None:
    from ftlang.syntax import parser as P
    from ftlang.syntax.grammar_cache import load_lark

    monkeypatch.setenv("FTLANG_CACHE_DIR", str(tmp_path))
    text = Path(__file__).parent.joinpath("corpus", "support_bot.ft").read_text()
    built = load_lark(P._OPTIONS, {})
    (cached_file,) = tmp_path.glob("grammar-*.json")
    loaded = load_lark(P._OPTIONS, {})
    assert type(loaded).__name__ == "Lark"
    assert _tables_parse(loaded, text) == _tables_parse(built, text)
    cached_file.write_text("{ not json")  # corrupt: rebuilt and rewritten
    again = load_lark(P._OPTIONS, {})
    assert _tables_parse(again, text) == _tables_parse(built, text)
    assert cached_file.read_text().startswith("{")
    import json
    json.loads(cached_file.read_text())
    assert not list(tmp_path.glob(".grammar-*"))  # no temp files left behind


def test_grammar_cache_unwritable(tmp_path, monkeypatch) -> None:
    from ftlang.syntax import parser as P
    from ftlang.syntax.grammar_cache import load_lark

    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("FTLANG_CACHE_DIR", str(blocker / "sub"))
    lark = load_lark(P._OPTIONS, {})
    assert _tables_parse(lark, "recipe r { }")[1][0][0] == "recipe"


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = ("import sys, ftlang.syntax.parser, ftlang.syntax.format, ftlang.render, ftlang.syntax.suppress; "
            "print(sorted(m for m in ('lark', 'torch', 'transformers', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_habits_from_other_config_languages() -> None:
    assert err("recipe r {\n  train { lr: 2e-4 }\n}")[0].help == "ftlang writes `key = value`, not `key: value`"
    assert "double quotes" in err("recipe r { x = 'a' }")[0].help
    assert "not ';'" in err("recipe r { x = 1; y = 2 }")[0].help
