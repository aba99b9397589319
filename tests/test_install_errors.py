"""An install that lacks something is told what, in the source tree too (tests/test_installed.py
checks the same on real installs): a missing dependency names the package and the extra (FT901,
exit 1); a missing grammar/stdlib file is an internal error naming that file, never "cannot read
<your recipe>"; `ftlang run` hides the libraries' noise unless --verbose."""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import pytest

from ftlang import resources
from ftlang.cli import main
from ftlang.environment import missing_dependency


def _missing(name: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(f"No module named '{name}'", name=name)


@pytest.mark.parametrize("module,extra", [("torch", "train"), ("transformers.models", "train"),
                                          ("rouge_score", "eval"), ("nlpaug", "augment")])
def test_a_missing_extra_names_it(module: str, extra: str) -> None:
    d = missing_dependency(_missing(module), "run")
    assert d is not None and d.code == "FT901"
    assert f"`{extra}` extra" in d.message and d.help == f"pip install 'ftlang[{extra}]'"


def test_a_missing_core_dependency_names_the_package() -> None:
    d = missing_dependency(_missing("pydantic"), "check")
    assert d is not None and "`pydantic`" in d.message and "broken" in d.message
    assert d.help.startswith("pip install 'pydantic<3,>=2.6'") or d.help.startswith("pip install 'pydantic>=2.6")


def test_an_undeclared_module_and_ftlang_bugs() -> None:
    d = missing_dependency(_missing("tokenizers"), "run")
    assert d is not None and "`tokenizers`" in d.message
    assert missing_dependency(_missing("ftlang.backend.nothing"), "run") is None  # a bug, not an install problem
    assert missing_dependency(ValueError("x"), "run") is None


def test_cli_reports_a_missing_dependency_without_internal_error(monkeypatch, capsys) -> None:
    from ftlang.commands import check

    def boom(args: argparse.Namespace) -> int:
        raise _missing("lark")

    monkeypatch.setattr(check, "run", boom)
    assert main(["check", "whatever.ft"]) == 1
    err = capsys.readouterr().err
    assert "FT901" in err and "`lark`" in err and "pip install 'lark" in err
    assert "internal error" not in err and "bug in ftlang" not in err


def test_a_missing_grammar_is_an_internal_error_naming_it(monkeypatch, capsys, tmp_path) -> None:
    from ftlang.syntax import grammar_cache, parser

    recipe = tmp_path / "recipe.ft"
    recipe.write_text('param x = 1\n', encoding="utf-8")
    gone = tmp_path / "site-packages" / "ftlang" / "_grammar" / "ftlang.lark"
    monkeypatch.setattr(parser, "_LARK", None)
    monkeypatch.setattr(grammar_cache, "grammar_path", lambda: gone)
    assert main(["check", str(recipe)]) == 70
    err = capsys.readouterr().err
    assert str(gone) in err and "internal error" in err and "reinstall" in err
    assert "cannot read `" not in err and "FT206" not in err


def test_installed_layout_without_the_data_folder(monkeypatch, tmp_path) -> None:
    # outside a checkout the data comes from the package folder; ours has no ftlang/_stdlib
    monkeypatch.setattr(resources, "_REPO", tmp_path)
    with pytest.raises(resources.MissingResource, match=r"_stdlib is missing"):
        resources._data_dir("_stdlib", "stdlib")
    with pytest.raises(resources.MissingResource, match="nope.json"):
        resources.read_shipped(tmp_path / "nope.json")


def test_checkout_layout_is_the_top_level_folders() -> None:
    root = Path(resources.__file__).resolve().parent.parent
    assert resources.grammar_path() == root / "grammar" / "ftlang.lark"
    assert resources.stdlib_dir() == root / "stdlib"


def test_run_quiets_libraries_unless_verbose(monkeypatch) -> None:
    from ftlang.commands._common import _QUIET_ENV, quiet_libraries

    for name in _QUIET_ENV:  # set, then delete: monkeypatch then restores what the test found
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with warnings.catch_warnings():
        quiet_libraries(verbose=True)
        assert not any(name in os.environ for name in _QUIET_ENV)
        with pytest.warns(FutureWarning):
            warnings.warn("shown", FutureWarning, stacklevel=1)
        quiet_libraries(verbose=False)
        assert os.environ["TQDM_DISABLE"] == "1" and os.environ["TRANSFORMERS_VERBOSITY"] == "error"
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("hidden", FutureWarning, stacklevel=1)
        assert caught == []


def test_launch_passes_verbose_to_every_process(tmp_path, monkeypatch) -> None:
    from backend_helpers import tiny_plan

    from ftlang.backend import launch
    from ftlang.plan import LoraMethod

    (tmp_path / "m").mkdir()
    plan = tiny_plan(tmp_path / "m", LoraMethod(targets=["q_proj"]), root=tmp_path)
    calls: list[list[str]] = []
    monkeypatch.setattr(launch.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    for verbose in (True, False):
        args = argparse.Namespace(verbose=verbose, resume=None, force=False, allow_outside=False, plan=None)
        assert launch.perform_launch(plan, "tiny.ft", args, tmp_path / "runs" / "x") == 0
    assert "--verbose" in calls[0] and "--verbose" not in calls[1]
