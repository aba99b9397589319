"""The generated docs and files are up to date with the code (scripts/gen_docs.py --check)."""

from __future__ import annotations

import importlib.util
import io
import re
from contextlib import redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_up_to_date(capsys):
    assert _gen_docs().main(["--check"]) == 0, capsys.readouterr().err


def test_committed_schema_is_what_ftlang_schema_prints():
    from ftlang.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["schema"]) == 0
    assert (REPO / "schema" / "plan.schema.json").read_text(encoding="utf-8") == out.getvalue()


def test_language_reference_documents_every_block_key():
    from ftlang.semantic.schema import BLOCKS

    text = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    for b in BLOCKS:
        for k in b.keys:
            assert f"| `{k.name}` |" in text, f"{b.name}.{k.name} missing from docs/language.md"


def test_diagnostics_reference_lists_every_explained_code():
    from ftlang.codes import all_codes

    text = (REPO / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### (FT\d{3}):", text, flags=re.M))
    assert {d.code for d in all_codes()} <= documented
    assert "FT001" in documented and "FT601" in documented


def test_architecture_names_modules_that_exist():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(ftlang/[\w/]+\.py)`", text))
    assert len(named) >= 10
    missing = sorted(p for p in named if not (REPO / p).is_file())
    assert not missing, f"docs/architecture.md names missing modules: {missing}"
