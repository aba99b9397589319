"""Where the shipped grammar and stdlib live: inside the installed package, or at the top of a source checkout.

A wheel or sdist install carries grammar/ and stdlib/ as the folders ftlang/_grammar and ftlang/_stdlib
(setup.py maps them). A file of ours that cannot be found is a broken install, reported as
MissingResource naming that file: never as the user's recipe being unreadable.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


class MissingResource(RuntimeError):
    """A file that ships with ftlang is missing or unreadable (not an OSError: callers that turn
    OSError into "cannot read <recipe>" must not catch it)."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"ftlang's own file {path} {reason}")
        self.path = Path(path)


def _data_dir(subdir: str, repo_dir: str) -> Path:
    # A source checkout (editable install, tests, PYTHONPATH) keeps the product layout.
    candidate = _REPO / repo_dir
    if candidate.is_dir() and (_REPO / "pyproject.toml").is_file():
        return candidate
    from importlib.resources import files

    # `ftlang` is a regular package, so on a file-system install files() is a real Path; the data
    # folders under it may be namespace packages, whose own files() is a MultiplexedPath (no str()).
    folder = files("ftlang") / subdir
    if not isinstance(folder, Path):
        raise MissingResource(folder, "is not a folder on disk (install ftlang unpacked, e.g. with pip)")
    if not folder.is_dir():
        raise MissingResource(folder, "is missing")
    return folder


def read_shipped(path: Path) -> str:
    """The text of a grammar/stdlib file; MissingResource (naming it) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise MissingResource(path, f"cannot be read: {e.strerror or e}") from None


@cache
def grammar_path() -> Path:
    return _data_dir("_grammar", "grammar") / "ftlang.lark"


@cache
def stdlib_dir() -> Path:
    return _data_dir("_stdlib", "stdlib")
