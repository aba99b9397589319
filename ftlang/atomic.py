"""Atomic file writes: a temp file in the target's folder, renamed over the target.

A reader (or a run killed half-way) sees the old file or the new one, never a torn one. Every JSON or
text file ftlang writes for later reading (run.json, gates.json, reports, manifests, caches) goes
through here. Also the one streaming file hash (sha256_file), for files of any size.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False, mode: int | None = None,
               newline: str | None = None) -> Path:
    """Write `text` (UTF-8) to `path` atomically; `fsync` also makes it durable across a power cut.

    The temp file is created with the usual umask-governed mode (not mkstemp's 0600), or `mode`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")  # not uuid: a 15 ms import
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, sort_keys: bool = False,
               ensure_ascii: bool = True, default: Any = None, fsync: bool = False) -> Path:
    """`data` as JSON plus a final newline, written atomically."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii, default=default)
    return write_text(path, text + "\n", fsync=fsync)


def write_lines(path: str | os.PathLike[str], rows: list[Any], *, ensure_ascii: bool = True) -> Path:
    """JSON lines (one object per line), written atomically."""
    return write_text(path, "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in rows))


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
