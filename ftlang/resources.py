"""Where the shipped grammar and stdlib live: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def _data_dir(package: str, repo_dir: str) -> Path:
    # A source checkout (editable install, tests, PYTHONPATH) keeps the product layout;
    # an installed wheel carries the same files as a data package.
    candidate = _REPO / repo_dir
    if candidate.is_dir() and (_REPO / "pyproject.toml").is_file():
        return candidate
    from importlib.resources import files

    return Path(str(files(package)))


@cache
def grammar_path() -> Path:
    return _data_dir("ftlang._grammar", "grammar") / "ftlang.lark"


@cache
def stdlib_dir() -> Path:
    return _data_dir("ftlang._stdlib", "stdlib")
