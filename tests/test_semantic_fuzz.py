"""No recipe, however mangled, makes the checker raise: every outcome is a list of diagnostics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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
