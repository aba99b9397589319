"""Property tests: no input, however broken, makes parse / fmt / render (or check) raise.

Mutations of the LANGUAGE.md corpus (token deletion, duplication, swaps, insertions, deep nesting,
huge numbers, unicode, raw bytes, path strings), random text and bytes, and a few hand-picked monsters.
Every other recipe of the repo is mutated in tests/test_semantic_fuzz.py; the longer run over all of
them is `python bench/fuzz.py --n 100000`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fuzz_support import KINDS, find_checker, invariant_failures, mutate, tokens
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftlang.source import SourceFile
from ftlang.syntax.parser import parse_text

CORPUS_DIR = Path(__file__).parent / "corpus"
CORPUS = [p.read_text() for p in sorted(CORPUS_DIR.glob("*.ft"))]
FUZZ_PATH = str(CORPUS_DIR / "fuzz_case.ft")  # relative data paths resolve (and fail) next to the corpus
EXAMPLES = int(os.environ.get("FTLANG_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                    database=None)

ops = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 1 << 30), st.integers(0, 1 << 30)),
               min_size=1, max_size=4)


def assert_clean(text: str, check: bool = False) -> None:
    failures = invariant_failures(text, FUZZ_PATH, find_checker() if check else None)
    assert failures == [], (failures, text[:500])


def test_tokens_are_lossless() -> None:
    for text in CORPUS:
        assert "".join(tokens(text)) == text


@SETTINGS
@given(st.sampled_from(CORPUS), ops)
def test_corpus_mutations(text: str, operations) -> None:
    assert_clean(mutate(text, operations))


@settings(max_examples=max(10, EXAMPLES // 4), deadline=None, suppress_health_check=list(HealthCheck),
          database=None)
@given(st.sampled_from(CORPUS), ops)
def test_corpus_mutations_through_check(text: str, operations) -> None:
    if find_checker() is None:
        pytest.skip("no checker pipeline yet")
    assert_clean(mutate(text, operations), check=True)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    assert_clean(text)


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list('recipe{}[]()=,|"#\\ \n\tabc019.%-<>!GBx')), max_size=200))
def test_random_recipe_alphabet(text: str) -> None:
    assert_clean(text)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    assert_clean(data.decode("utf-8", errors="replace"))


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{", "}"), ("(", ")"), ("f(", ")")])
def test_deep_nesting(opener: str, closer: str) -> None:
    for text in (f"recipe r {{ x = {opener * 5000}", f"recipe r {{ x = {opener * 5000}1{closer * 5000} }}",
                 "recipe r { " + "a { " * 5000 + "}" * 5001, opener * 5000):
        module, diags = parse_text(text)
        assert module is None and diags and diags[0].code.startswith("FT0") and diags[0].span.line >= 1
        assert_clean(text)


def test_deep_blocks_report_nesting() -> None:
    module, diags = parse_text("recipe r { " + "a { " * 5000 + "}" * 5001)
    assert diags[0].code == "FT007"


@pytest.mark.parametrize("number", ["9" * 5000, "1e999", "-1e400", "9" * 5000 + "GB", "1" * 4000 + "%",
                                    "0." + "0" * 5000 + "1", "123456789" * 100])
def test_huge_numbers(number: str) -> None:
    assert_clean(f"recipe r {{ x = {number} }}")
    assert_clean(f"param p = {number}")


def test_long_chains_and_prefixes() -> None:
    for expr in (" + ".join(["1"] * 5000), " and ".join(["a"] * 5000), "not " * 5000 + "a", "-" * 5000 + "1",
                 "a < b < c", "(" * 150 + "1" + ")" * 150):
        assert_clean(f"recipe r {{ x = {expr} }}")


def test_ten_megabyte_file() -> None:
    # One long comment plus one long string: large, but cheap to lex; then 10 MB of garbage.
    assert_clean("# " + "x" * 5_000_000 + "\nrecipe r { s = \"" + "y" * 5_000_000 + "\" }\n")
    garbage = ("\x00\xff{[(" * 2_600_000)[:10_400_000]
    module, diags = parse_text(garbage)
    assert module is None and diags and all(d.span.line >= 1 for d in diags)


def test_over_the_size_limit_is_a_clean_error() -> None:
    module, diags = parse_text("#" * 12_000_001)
    assert module is None and diags[0].code == "FT008"


def test_non_utf8_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.ft"
    p.write_bytes(b"recipe r {\n  x = \"\xff\xfe\"\n  y \xc3\x28 = 1\n}\n")
    source = SourceFile.read(p)
    module, diags = parse_text(source.text, str(p))
    assert module is None and diags[0].span.line == 3
    assert_clean(source.text)


def test_unicode_everywhere() -> None:
    for text in ("recipe r { x = \"\u202e\u200b😀\" } # ünïcödé ✓", "recipe ré { }", "\ufeffrecipe r { }",
                 "recipe r { x = \"\ud800\" }", "recipe r {\u2028}", "recipe r { x = 1 }\u0000"):
        assert_clean(text)


@pytest.mark.slow
def test_ten_megabytes_of_recipes() -> None:
    body = CORPUS_DIR.joinpath("support_bot.ft").read_text().split("recipe support_bot", 1)[1]
    text = "".join(f"recipe r{i}{body}" for i in range(10_000_000 // len(body) + 1))
    module, diags = parse_text(text)
    assert diags == [] and module is not None and len(module.items) > 4000
    broken = text[: len(text) - 3]  # the last recipe loses its closing brace
    module, diags = parse_text(broken)
    assert module is None and diags[0].code == "FT003"


def test_lexer_has_no_backtracking_traps() -> None:
    # each of these would take minutes with a quadratic or exponential regex
    for text in ("recipe r { }" + " " * 1_000_000, " " * 1_000_000 + "\x00", '"' + "a" * 1_000_000,
                 '"' + "\\a" * 500_000, "recipe r { x = \"" + "\\\\" * 500_000 + "\" }", "#" * 1_000_000):
        module, diags = parse_text(text)
        assert (module is None) == bool(diags)
        assert all(d.span.line >= 1 for d in diags)
