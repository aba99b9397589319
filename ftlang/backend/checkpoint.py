"""Atomic checkpoints: only a checkpoint whose completion marker was written last is resumable.

The Trainer writes `checkpoints/checkpoint-N/` file by file; a kill in the middle leaves a half
folder. After the Trainer has written everything (weights, optimizer, scheduler, RNG states, trainer
state) the `on_save` callback writes `ftlang-complete.json` (a temp name renamed into place) listing
every file and its size. Resume takes the newest checkpoint whose marker matches its files, and
rotation (keeping `save_total_limit`) runs only after a newer checkpoint is complete, so a kill at
any moment leaves at least the last complete checkpoint intact.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ftlang.atomic import write_json

MARKER = "ftlang-complete.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: Path) -> int | None:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else None


def _files(ckpt: Path) -> dict[str, int]:
    out = {}
    for p in sorted(ckpt.rglob("*")):
        try:
            if p.is_file() and p.name != MARKER and not p.name.endswith(".tmp"):
                out[p.relative_to(ckpt).as_posix()] = p.stat().st_size
        except FileNotFoundError:  # another process is removing this checkpoint
            continue
    return out


def mark_complete(ckpt: Path, step: int) -> None:
    """Write the completion marker last, atomically (temp file + fsync + rename)."""
    files = _files(ckpt)
    write_json(ckpt / MARKER, {"step": step, "files": files}, indent=1, fsync=True)


def is_complete(ckpt: Path) -> bool:
    marker = ckpt / MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, OSError):
        return False
    try:
        present = _files(ckpt)
    except FileNotFoundError:
        return False
    return all(present.get(name) == size for name, size in recorded.items())


def all_checkpoints(ckpt_root: Path) -> list[Path]:
    """Every checkpoint-N folder, oldest step first."""
    if not ckpt_root.is_dir():
        return []
    found = [(checkpoint_step(p), p) for p in ckpt_root.iterdir() if p.is_dir()]
    return [p for step, p in sorted((s, p) for s, p in found if s is not None)]


def complete_checkpoints(ckpt_root: Path) -> list[Path]:
    return [p for p in all_checkpoints(ckpt_root) if is_complete(p)]


def latest_complete(ckpt_root: Path) -> Path | None:
    done = complete_checkpoints(ckpt_root)
    return done[-1] if done else None


def discard_incomplete(ckpt_root: Path) -> list[Path]:
    """Remove half-written checkpoints (a kill mid-save); returns what was removed."""
    removed = []
    for p in all_checkpoints(ckpt_root):
        if not is_complete(p):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def rotate(ckpt_root: Path, keep: int | None, protect: str | Path | None = None) -> None:
    """Keep the newest `keep` complete checkpoints; older complete ones are deleted, except `protect`
    (the best checkpoint, when the gates read it)."""
    if not keep or keep < 1:
        return
    done = complete_checkpoints(ckpt_root)
    kept = Path(protect).resolve() if protect else None
    for p in done[:-keep]:
        if kept is None or Path(p).resolve() != kept:
            shutil.rmtree(p, ignore_errors=True)
