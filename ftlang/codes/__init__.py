"""The one registry of diagnostic codes: code → title, severity, explanation and owning stage.

Every code any stage can report is declared here, once, in the table of its stage (syntax.py,
check.py, rules.py, data.py, run.py, finish.py: plain data, torch-free and cheap to import).
`ftlang explain`, docs/diagnostics.md (scripts/gen_docs.py), SARIF output and default help lines
read it; tests/test_codes.py proves that every code the source can emit is declared here.
"""

from __future__ import annotations

from functools import cache

from ftlang.codes import check, data, finish, importer, rules, run, sweep, syntax
from ftlang.codes.model import Code, Stage

__all__ = ["Code", "Stage", "all_codes", "lookup", "registry"]


@cache
def registry() -> dict[str, Code]:
    out: dict[str, Code] = {}
    for table in (syntax.CODES, check.CODES, rules.CODES, data.CODES, run.CODES, finish.CODES, importer.CODES,
                  sweep.CODES):
        for entry in table:
            if entry.code in out:
                raise ValueError(f"diagnostic code {entry.code} is declared twice")
            out[entry.code] = entry
    return dict(sorted(out.items()))


def lookup(code: str) -> Code | None:
    """The declaration of a code (case-insensitive), or None."""
    return registry().get(code.strip().upper())


def all_codes(stage: Stage | None = None) -> list[Code]:
    return [c for c in registry().values() if stage is None or c.stage is stage]
