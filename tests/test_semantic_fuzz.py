"""No recipe, however mangled, makes the checker raise: every outcome is a list of diagnostics.

Mutations of the corpus, and of every recipe in the repo (examples/, stdlib/, tests/, docs/) with
path-aware mutations: names too long for the file system, NUL bytes, `..`, directories where files
are expected, symlink loops (bench/fuzz.py is the long run of the latter)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fuzz_support import GENTLE, KINDS, find_checker, fuzz_project, invariant_failures, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from semantic_project import CORPUS, make_project

from ftlang.semantic.check import CheckResult, check_text

TEXTS = [p.read_text() for p in sorted(CORPUS.glob("*.ft"))]
_TOKEN = re.compile(r'[A-Za-z_]+|\d+(?:\.\d+)?(?:e-?\d+)?%?|"[^"]*"|\s+|\S')
VOCAB = sorted({t for text in TEXTS for t in _TOKEN.findall(text) if not t.isspace()})


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("fuzz"))


@st.composite
def mutated(draw) -> str:
    parts = _TOKEN.findall(draw(st.sampled_from(TEXTS)))
    for _ in range(draw(st.integers(1, 4))):
        j = draw(st.integers(0, len(parts) - 1))
        op = draw(st.sampled_from(["replace", "delete", "insert", "double"]))
        if op == "replace":
            parts[j] = draw(st.sampled_from(VOCAB))
        elif op == "delete":
            del parts[j]
        elif op == "insert":
            parts.insert(j, draw(st.sampled_from(VOCAB)) + " ")
        else:
            parts[j] = parts[j] * 2
    return "".join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
def test_mutated_recipes_never_raise(proj: Path, text: str) -> None:
    res = check_text(text, proj / "fuzz.ft")
    assert isinstance(res, CheckResult)
    assert all(d.code != "FT999" for d in res.diagnostics)  # no rule crashed
    if res.plan is not None:
        assert res.ok


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_random_text_never_raises(proj: Path, text: str) -> None:
    assert isinstance(check_text(text, proj / "fuzz.ft"), CheckResult)


@pytest.fixture(scope="module")
def every_recipe(tmp_path_factory) -> list[tuple[Path, str]]:
    return fuzz_project(Path(__file__).parent.parent, tmp_path_factory.mktemp("every") / "repo")


def test_every_recipe_is_in_the_fuzz_corpus(every_recipe) -> None:
    names = {p.name for p, _ in every_recipe}
    assert {"quickstart.ft", "smollm2.ft", "support_bot.ft"} <= names
    assert any(n.startswith("test_") for n in names)  # recipes embedded in tests/*.py


_PATH_OPS = st.lists(st.tuples(st.sampled_from(("path", "path", *GENTLE, *KINDS)), st.integers(0, 1 << 30),
                               st.integers(0, 1 << 30)), min_size=1, max_size=3)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_every_recipe_with_path_mutations(every_recipe, data) -> None:
    where, text = data.draw(st.sampled_from(every_recipe))
    mutated_text = mutate(text, data.draw(_PATH_OPS))
    failures = invariant_failures(mutated_text, str(where.with_name("fuzz_case.ft")), find_checker())
    assert failures == [], (failures, where.name, mutated_text[:500])
