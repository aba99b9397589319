"""The one gate for every path the checker touches: recipe files, imports, data, models, registries.

    probe(path) -> Probe                  what is there: file, dir, other, missing, or why it is unusable
    is_file(path) / is_dir(path) -> bool  never raise (pathlib raises on names too long for the system)
    checked_path(written, base, span, what, root=..., expect=..., must_exist=...) -> (Path | None, Diagnostic | None)

A path a user writes can hold a NUL byte (os functions raise ValueError), be longer than the file
system allows (OSError ENAMETOOLONG), loop through symbolic links (ELOOP), climb out of the project
with `..`, or name a directory where a file is expected. Each is a positioned diagnostic here, never
an exception further down.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from ftlang.diagnostics import Diagnostic, error
from ftlang.source import Span

Kind = Literal["file", "dir", "other", "missing", "bad"]
Expect = Literal["file", "dir", "any"]

_NAME_MAX = 255  # bytes per name on ext4, xfs, btrfs, apfs, ntfs: the help names it, the OS decides


@dataclass(frozen=True)
class Probe:
    kind: Kind
    why: str = ""  # for "bad": what is wrong, in words for the user
    help: str = ""


def probe(path: str | os.PathLike[str]) -> Probe:
    """What `path` is, without raising: a file, a directory, something else, nothing, or unusable."""
    text = os.fspath(path)
    if "\x00" in text:
        return Probe("bad", "contains a NUL byte", "remove the control character from the path")
    try:
        st = os.stat(text)
    except ValueError as e:  # e.g. a lone surrogate that the file system encoding cannot represent
        return Probe("bad", f"cannot be used as a path ({e})", "use plain characters in file names")
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return Probe("missing")
        if e.errno == errno.ENAMETOOLONG:
            return Probe("bad", "is too long for the file system",
                         f"a name in a path is at most {_NAME_MAX} bytes here; shorten it")
        if e.errno == errno.ELOOP:
            return Probe("bad", "is a loop of symbolic links", "fix the link that points back at itself")
        if e.errno == errno.EACCES:
            return Probe("bad", "cannot be read (permission denied)", "check the folder's permissions")
        return Probe("bad", f"cannot be used ({e.strerror or e})", "check the path")
    if stat.S_ISREG(st.st_mode):
        return Probe("file")
    return Probe("dir" if stat.S_ISDIR(st.st_mode) else "other")


def is_file(path: str | os.PathLike[str]) -> bool:
    return probe(path).kind == "file"


def is_dir(path: str | os.PathLike[str]) -> bool:
    return probe(path).kind == "dir"


def inside(path: Path, root: Path, cached: bool = False) -> bool:
    """Whether `path`, links followed, lies in `root` (call only once `path` has no NUL byte)."""
    real, base = (_real(str(path)) if cached else os.path.realpath(path)), _real(str(root))
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


@lru_cache(maxsize=1024)
def _real(path: str) -> str:
    # cached for roots and imported files (a checker process does not see them move); data paths
    # are resolved afresh by inside()
    return os.path.realpath(path)


def _shown_base(base: Path, root: Path | None) -> str:
    if root is not None:
        real, top = _real(str(base)), _real(str(root))
        if real == top:
            return "."
        if real.startswith(top.rstrip(os.sep) + os.sep):
            return real[len(top.rstrip(os.sep)) + 1:]
    return str(base)


def checked_path(written: str, base: Path, span: Span | None, what: str, *, root: Path | None,
                 expect: Expect = "file", must_exist: bool = True,
                 missing_code: str = "FT203") -> tuple[Path | None, Diagnostic | None]:
    """`written` (as in the recipe) resolved against `base`; the path, or None and the reason.

    root: the folder the path must stay inside (None: anywhere). expect: what must be there when
    something is. A missing path is an error only when must_exist (a registry is created later).
    """
    target = base / written
    shown = written if len(written) <= 80 else written[:60] + f"…({len(written)} characters)"
    shown = shown.replace("\x00", "\\0")
    p = probe(target)
    if p.kind == "bad" and "\x00" in written:  # checked first: realpath() below would raise on it
        return None, error("FT221", f"{what} `{shown}` {p.why}", span, p.help)
    if root is not None and not inside(target, root):
        return None, error("FT204", f"{what} `{shown}` is outside the project root", span,
                           f"keep {what}s inside {root} (the nearest folder with .git or pyproject.toml)")
    if p.kind == "bad":
        return None, error("FT221", f"{what} `{shown}` {p.why}", span, p.help)
    if p.kind == "missing":
        if not must_exist:
            return target, None
        return None, error(missing_code, f"{what} `{shown}` does not exist", span,
                           f"the path is relative to {_shown_base(base, root)}/; create the file or fix the path")
    if expect == "file" and p.kind != "file":
        return None, error("FT221", f"{what} `{shown}` is a {_kind_word(p.kind)}, not a file", span,
                           "name a file inside it" if p.kind == "dir" else "name a regular file")
    if expect == "dir" and p.kind != "dir":
        return None, error("FT221", f"{what} `{shown}` is a {_kind_word(p.kind)}, not a directory", span,
                           "name the folder that holds the file" if p.kind == "file" else "name a directory")
    return target, None


def path_problem(path: str | os.PathLike[str], expect: Expect) -> str | None:
    """Why a path given on the command line cannot be used (None: it can), for a usage error."""
    p = probe(path)
    shown = os.fspath(path)
    if p.kind == "missing":
        return f"no such file: {shown}"
    if p.kind == "bad":
        return f"{shown[:80]}: {p.why}"
    if expect != "any" and p.kind != expect:
        return f"{shown}: is a {_kind_word(p.kind)}, not a {'file' if expect == 'file' else 'directory'}"
    return None


def _kind_word(kind: Kind) -> str:
    return {"file": "file", "dir": "directory"}.get(kind, "special file")
