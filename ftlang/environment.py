"""What to tell a user whose install is missing something: a dependency (FT901) or a shipped file.

Which extra provides a package is read from ftlang's own metadata (pyproject.toml's dependencies and
optional-dependencies, as installed), so the extras stay declared in one place.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from ftlang.diagnostics import Diagnostic, error

_REQ = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)([^;]*)(?:;.*extra\s*==\s*['\"]([^'\"]+)['\"])?")


#: import names that differ from the distribution that provides them
_DISTRIBUTIONS = {"yaml": "pyyaml"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_lines() -> list[str]:
    from importlib.metadata import PackageNotFoundError, requires

    try:
        return list(requires("ftlang") or [])
    except PackageNotFoundError:  # a bare source tree on PYTHONPATH: read the checkout's pyproject.toml
        try:
            import tomllib
        except ImportError:  # Python 3.10: no TOML reader in the standard library
            return []
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        except (OSError, ValueError, KeyError):
            return []
        lines = list(project.get("dependencies", []))
        for extra, reqs in project.get("optional-dependencies", {}).items():
            lines += [f'{r}; extra == "{extra}"' for r in reqs]
        return lines


@cache
def requirements() -> dict[str, tuple[str, str | None]]:
    """normalized distribution name → (requirement as declared, extra or None for a core dependency)."""
    out: dict[str, tuple[str, str | None]] = {}
    for line in _requirement_lines():
        m = _REQ.match(line)
        if m:
            out.setdefault(_norm(m.group(1)), ((m.group(1) + m.group(2)).strip(), m.group(3)))
    return out


def missing_dependency(e: BaseException, command: str | None) -> Diagnostic | None:
    """FT901 for an import of a package that is not installed; None when `e` is anything else
    (a missing ftlang module is a bug, not an install problem)."""
    if not isinstance(e, ModuleNotFoundError) or not e.name:
        return None
    top = e.name.split(".")[0]
    if top == "ftlang":
        return None
    needed_by = f"`ftlang {command}`" if command else "ftlang"
    found = requirements().get(_norm(_DISTRIBUTIONS.get(top, top)))
    if found is None:
        return error("FT901", f"{needed_by} needs the Python module `{top}`, which is not installed", None,
                     help=f"it comes with one of ftlang's dependencies: pip install {top}, or reinstall ftlang "
                          "with the extras you use, e.g. pip install --force-reinstall 'ftlang[train,eval]'")
    req, extra = found
    if extra is None:
        return error("FT901", f"ftlang's dependency `{top}` is not installed: this install of ftlang is broken",
                     None, help=f"pip install '{req}' (or reinstall: pip install --force-reinstall ftlang)")
    return error("FT901", f"{needed_by} needs the `{extra}` extra: the Python package `{top}` is not installed",
                 None, help=f"pip install 'ftlang[{extra}]'")
