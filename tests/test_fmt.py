"""The formatter: canonical, idempotent, meaning-preserving, keeps every comment; `ftlang fmt` CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ftlang.cli import main
from ftlang.source import SourceFile
from ftlang.syntax.format import format_text, quote, shape
from ftlang.syntax.parser import parse_text

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.ft"))


def fmt(text: str) -> str:
    out, diags = format_text(text)
    assert diags == [] and out is not None, diags
    return out


def check_invariants(text: str) -> str:
    out = fmt(text)
    assert fmt(out) == out, "not idempotent"
    before, _ = parse_text(text)
    after, _ = parse_text(out)
    assert shape(before.items) == shape(after.items), "meaning changed"
    assert [c.text.rstrip() for c in before.comments] == [c.text for c in after.comments], "comments changed"
    return out


REPO = Path(__file__).resolve().parent.parent
OTHERS = sorted(p for d in ("stdlib", "examples") for p in (REPO / d).rglob("*.ft"))


@pytest.mark.parametrize("path", CORPUS + OTHERS, ids=[str(p.relative_to(REPO)) for p in CORPUS + OTHERS])
def test_corpus_invariants(path: Path) -> None:
    out = check_invariants(path.read_text())
    assert all(len(line) <= 100 or "#" in line for line in out.splitlines())
    assert "\t" not in out and not any(line != line.rstrip() for line in out.splitlines())


def test_canonical_layout() -> None:
    src = ('recipe   r{\n'
           '    model=local( "m" )\n'
           '    method lora {r=8,alpha=16}\n'
           '    train {\n  lr = 2e-4, epochs = 1\n    }\n'
           '    dataset train = a|b( x=1 )\n'
           '}')
    assert fmt(src) == ('recipe r {\n'
                        '  model = local("m")\n'
                        '  method lora { r = 8, alpha = 16 }\n'
                        '  train {\n    lr = 2e-4\n    epochs = 1\n  }\n'
                        '  dataset train = a | b(x = 1)\n'
                        '}\n')


def test_long_one_line_block_breaks() -> None:
    keys = ", ".join(f"key_number_{i} = {i}" for i in range(8))
    out = check_invariants(f"recipe r {{ train {{ {keys} }} }}")
    assert "  train {\n    key_number_0 = 0\n" in out


def test_lists_break_only_when_needed() -> None:
    assert fmt("recipe r {\n x = [\n a,\n b\n ]\n}") == "recipe r {\n  x = [a, b]\n}\n"
    long = "[" + ", ".join(f"module_name_{i}" for i in range(12)) + "]"
    out = check_invariants(f"recipe r {{\n targets = {long}\n}}")
    assert "  targets = [\n    module_name_0,\n" in out and out.count("\n    module_name_") == 12
    assert "  ]\n}" in out


def test_comments_everywhere() -> None:
    src = ("# head\n\n\n\nimport \"a.ft\"   # why\n"
           "recipe r {   # opens\n"
           "  # own line\n"
           "  targets = [q_proj,   # query\n"
           "             v_proj]   # value\n"
           "  dataset t = d\n"
           "    # before a stage\n"
           "    | dedupe(exact)   # stage\n"
           "  method lora { r = 8 }  # one-liner\n"
           "  train {\n"
           "    lr = 1   # trailing\n"
           "    # dangling at the end\n"
           "  }   # closes train\n"
           "  gate a and  # inside an expression\n"
           "    b\n"
           "}\n"
           "# tail\n")
    out = check_invariants(src)
    assert out.startswith('# head\n\nimport "a.ft"  # why\n\nrecipe r {  # opens\n  # own line\n')
    assert "  targets = [\n    q_proj,  # query\n    v_proj,\n  ]  # value\n" in out
    assert "  dataset t = d\n    # before a stage\n    | dedupe(exact)  # stage\n" in out
    assert "  method lora { r = 8 }  # one-liner\n" in out
    assert "    lr = 1  # trailing\n    # dangling at the end\n  }  # closes train\n" in out
    assert out.endswith("}\n# tail\n")


def test_blank_lines_collapse_and_recipes_are_spaced() -> None:
    out = fmt("param a = 1\n\n\n\nparam b = 2\nrecipe r {\n\n\n  x = 1\n\n\n\n  y = 2\n\n}\nrecipe s { }")
    assert out == "param a = 1\n\nparam b = 2\n\nrecipe r {\n  x = 1\n\n  y = 2\n}\n\nrecipe s { }\n"


def test_expressions_get_minimal_parentheses() -> None:
    cases = {
        "((a))": "a", "(a or b) and c": "(a or b) and c", "a or (b and c)": "a or b and c",
        "not (a and b)": "not (a and b)", "not a < 1": "not a < 1", "a - (b - c)": "a - (b - c)",
        "(a - b) - c": "a - b - c", "-(a + b)": "-(a + b)", "a * (b + c)": "a * (b + c)",
        "- - 1": "1", "-x": "-x", "a - -1": "a - -1", "(a < b) == c": "(a < b) == c",
        "len(output)>0": "len(output) > 0", "2e-4": "2e-4", "10%": "10%", "24GB": "24GB",
    }
    for src, want in cases.items():
        out = check_invariants(f"recipe r {{\n  x = {src}\n}}")
        assert out == f"recipe r {{\n  x = {want}\n}}\n", src


def test_strings_round_trip() -> None:
    for value in ['a"b', "back\\slash", "new\nline", "tab\t", "\x00\x1f\x7f", "é ✓ 😀", "\u2028", ""]:
        text = quote(value)
        module, diags = parse_text(f"recipe r {{ x = {text} }}")
        assert diags == [] and module.items[0].body[0].value.value == value
    assert fmt('recipe r { x = "\\u00e9\\/" }') == 'recipe r { x = "é/" }\n'


def test_syntax_error_is_reported_not_formatted() -> None:
    out, diags = format_text("recipe r { lr 1 }")
    assert out is None and diags[0].code == "FT010"


def test_empty_and_comment_only_files() -> None:
    assert fmt("") == ""
    assert fmt("\n\n  \n") == ""
    assert fmt("  # just a note   \n") == "# just a note\n"


# --------------------------------------------------------------------------- CLI


def test_cli_rewrites_and_checks(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.ft"
    good.write_text("recipe r {\n  x = 1\n}\n")
    ugly = tmp_path / "sub" / "ugly.ft"
    ugly.parent.mkdir()
    ugly.write_text("recipe r{x=1}")
    ugly.chmod(0o640)
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert f"would reformat {ugly}" in out.out and str(good) not in out.out
    assert ugly.read_text() == "recipe r{x=1}"
    assert main(["fmt", str(ugly), str(good)]) == 0
    assert ugly.read_text() == "recipe r { x = 1 }\n" and (ugly.stat().st_mode & 0o777) == 0o640
    assert main(["fmt", "--check", str(tmp_path)]) == 0
    ugly.write_text("recipe r{x=1}")
    assert main(["fmt", "--check", "--diff", str(ugly)]) == 1
    out = capsys.readouterr().out
    assert "-recipe r{x=1}\n" in out and "+recipe r { x = 1 }\n" in out
    ugly.write_text("recipe r { x = 1 }\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["good.ft", "sub", "ugly.ft"]  # no temp files left


def test_cli_syntax_error_not_rewritten(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.ft"
    bad.write_text("recipe r {\n  train { lr 2e-4 }\n")
    assert main(["fmt", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "error[FT" in err and f"{bad}:2:" in err and "with errors" in err
    assert bad.read_text() == "recipe r {\n  train { lr 2e-4 }\n"
    assert main(["fmt", "--format", "concise", str(bad)]) == 1
    assert f"{bad}:2:14: error[FT010]" in capsys.readouterr().out


def test_cli_non_utf8_and_missing(tmp_path: Path, capsys) -> None:
    raw = tmp_path / "latin1.ft"
    raw.write_bytes(b'recipe r { x = "caf\xe9" }\n')
    assert main(["fmt", str(raw)]) == 1
    assert "FT017" in capsys.readouterr().err and raw.read_bytes() == b'recipe r { x = "caf\xe9" }\n'
    assert main(["fmt", str(tmp_path / "nope.ft")]) == 1
    assert "FT016" in capsys.readouterr().err


def test_shape_ignores_positions_only() -> None:
    a, _ = parse_text("recipe r { x = 1 }")
    b, _ = parse_text("recipe r {\n\n   x = 1\n}")
    c, _ = parse_text("recipe r { x = 2 }")
    assert shape(a.items) == shape(b.items) != shape(c.items)
    assert SourceFile("x", "a").span(0, 1) != SourceFile("y", "a").span(0, 1)


# --------------------------------------------------------------------------- generated programs

from fuzz_support import invariant_failures  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KEYWORDS = {"import", "param", "recipe", "extends", "model_card", "alias", "data", "dataset", "gate",
            "forgetting", "on", "and", "or", "not", "true", "false"}
names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
numbers = st.sampled_from(["0", "16", "2e-4", "1.0", ".5", "1.", "3%", "0.5%", "24GB", "512MiB", "1B", "007"])
strings = st.text(max_size=12).map(quote)
leaves = st.one_of(numbers, strings, names, st.sampled_from(["true", "false"]))


def _compound(children):
    args = st.lists(st.one_of(children, st.tuples(names, children).map(lambda kv: f"{kv[0]} = {kv[1]}")),
                    max_size=3)
    return st.one_of(
        st.lists(children, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(names, args).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "and", "or"]), children)
          .map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(children, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), children)
          .map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        children.map(lambda x: f"not ({x})"),
        children.map(lambda x: f"-({x})"),
        children.map(lambda x: f"({x})"),
    )


values = st.recursive(leaves, _compound, max_leaves=8)


def _stmt(children):
    labels = st.one_of(st.just(""), names, strings)
    return st.one_of(
        st.tuples(names, labels, st.lists(children, max_size=3)).map(
            lambda t: f"{t[0]} {t[1]} {{ " + ", ".join(t[2]) + " }"),
    )


flat_stmts = st.one_of(
    st.tuples(names, values).map(lambda t: f"{t[0]} = {t[1]}"),
    values.map(lambda v: f"gate {v}"),
    names.map(lambda n: f"forgetting on {n}"),
    st.tuples(names, values).map(lambda t: f"alias {t[0]} = {t[1]}"),
    st.tuples(names, st.lists(st.one_of(names, st.tuples(names, values).map(lambda t: f"{t[0]}(x = {t[1]})")),
                              min_size=1, max_size=4)).map(lambda t: f"dataset {t[0]} = " + " | ".join(t[1])),
    st.tuples(names, st.text(max_size=8).map(quote)).map(lambda t: f"data {t[0]} = jsonl({t[1]}) {{ format = chat }}"),
)
stmts = st.recursive(flat_stmts, _stmt, max_leaves=10)
recipes = st.tuples(names, st.lists(stmts, max_size=6)).map(
    lambda t: f"recipe {t[0]} {{\n" + "\n".join(t[1]) + "\n}\n")
layouts = st.lists(st.sampled_from([" ", "\n", "\n\n\n", "  # note\n", "\t", " # x, y { }\n"]), min_size=1)


@st.composite
def programs(draw) -> str:
    text = draw(st.lists(recipes, min_size=1, max_size=2).map("".join))
    # re-space: every run of spaces may become any layout (comments, blank lines, tabs)
    pieces = text.split(" ")
    out = [pieces[0]]
    for piece in pieces[1:]:
        out.append(draw(st.sampled_from([" ", " ", " ", draw(layouts) and " ".join([" "] + draw(layouts))])))
        out.append(piece)
    return "".join(out)


@settings(max_examples=int(os.environ.get("FTLANG_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=list(HealthCheck), database=None)
@given(programs())
def test_generated_programs_format_cleanly(text: str) -> None:
    module, diags = parse_text(text)
    if module is None:  # a layout choice can split a token (e.g. inside a string); nothing to format
        assert diags
        return
    assert invariant_failures(text) == []
    out = fmt(text)
    assert all(line == line.rstrip() for line in out.splitlines())


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.text(max_size=40), st.floats(allow_nan=False, allow_infinity=False, min_value=0), st.integers(min_value=0))
def test_literals_round_trip(text: str, number: float, integer: int) -> None:
    module, diags = parse_text(f"recipe r {{ s = {quote(text)}, f = {number!r}, i = {integer} }}")
    assert diags == []
    s, f, i = module.items[0].body
    assert s.value.value == text and f.value.value == number and i.value.value == integer
