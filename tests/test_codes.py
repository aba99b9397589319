"""The one code registry (ftlang/codes/) is complete: every code the source can emit is declared there,
documented, and owned by a stage; every rule's code is a rule code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ftlang.codes import Stage, all_codes, lookup, registry
from ftlang.diagnostics import Severity
from ftlang.semantic.rules.registry import RULES

PACKAGE = Path(__file__).resolve().parent.parent / "ftlang"
CODE = re.compile(r"\bFT\d{3}\b")
_CONSTRUCTORS = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))
            if "codes" not in p.relative_to(PACKAGE).parts[:1]]  # the registry itself is not an emitter


def _emitted() -> dict[str, list[str]]:
    """Every FTnnn in a string literal of the package (f-strings included) → where it appears."""
    found: dict[str, list[str]] = {}
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for code in CODE.findall(node.value):
                    found.setdefault(code, []).append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_every_emitted_code_is_registered() -> None:
    emitted = _emitted()
    assert len(emitted) > 100  # the scan does see the code base
    missing = {code: where[:3] for code, where in emitted.items() if lookup(code) is None}
    assert not missing, f"codes used in the source but not declared in ftlang/codes/: {missing}"


def test_every_registered_code_is_emitted_somewhere() -> None:
    emitted = _emitted()
    rule_codes = {r.code for r in RULES}
    stale = [c.code for c in all_codes() if c.code not in emitted and c.code not in rule_codes]
    assert not stale, f"declared codes nothing reports (retire them or use them): {stale}"


def test_every_code_is_documented_and_owned() -> None:
    assert len(registry()) == len({c.code for c in all_codes()})
    for c in all_codes():
        assert re.fullmatch(r"FT\d{3}", c.code)
        assert c.title and c.explain and isinstance(c.stage, Stage) and isinstance(c.severity, Severity), c
    text = (PACKAGE.parent / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    assert set(re.findall(r"^### (FT\d{3}):", text, flags=re.M)) == set(registry())


def test_rules_own_rule_codes() -> None:
    rule_codes = {r.code for r in RULES}
    assert rule_codes == {c.code for c in all_codes(Stage.RULES)}


def test_declared_severity_matches_the_constructors() -> None:
    """error("FT4xx") for a code declared a warning (or the reverse) is a mistake in one of the two."""
    wrong = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CONSTRUCTORS
                    and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            declared = lookup(str(node.args[0].value))
            used = _CONSTRUCTORS[node.func.id]
            # an error-level code may be reported as info where nothing is wrong yet (check --data)
            if declared is not None and used is not declared.severity and not (
                    declared.severity is Severity.ERROR and used is Severity.INFO):
                wrong.append(f"{path.name}:{node.lineno} {declared.code} {used.value} vs {declared.severity.value}")
    assert not wrong, wrong


def test_explain_reads_the_registry(capsys) -> None:
    from ftlang.cli import main

    assert main(["explain", "ft618"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FT618: row has no trainable token after truncation") and "data" in out
    assert main(["explain", "FT699"]) == 2  # never declared: explain says so
