"""A filesystem model registry: `<dir>/<name>/<version>/` holding artifacts and `manifest.json`.

- Versions are v1, v2, ... and never overwritten: a publish copies into a temp dir inside the
  registry (`<name>/.tmp-*`) and `os.rename`s it to the next free version, under a lock file
  created with O_EXCL. A killed publish leaves only a temp dir, which is never listed as a version
  and is cleaned by the next publish or `verify`.
- A lock whose holder is gone (dead pid on this host, or older than STALE_AFTER_S) is stale and
  broken; a live one is waited for up to a timeout.
- The manifest records the plan hash, data hashes, metrics, gates, the parent version, the stage,
  the sha256 of every artifact file and created_at. `verify` re-hashes every file.
- Stages: staging, production, archived; one production version per name (promoting another
  archives the previous one).

Pure standard library: `ftlang registry` never imports torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftlang.atomic import sha256_file, write_json
from ftlang.diagnostics import DiagnosticError, error

STAGES = ("staging", "production", "archived")
MANIFEST = "manifest.json"
LOCK = ".lock"
TMP_PREFIX = ".tmp-"
STALE_AFTER_S = 600.0
EMPTY_LOCK_GRACE_S = 2.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^v([1-9][0-9]*)$")


def _fail(code: str, message: str, help: str) -> DiagnosticError:
    return DiagnosticError(error(code, message, None, help=help))


def _write_error(root: Path, e: OSError) -> DiagnosticError:
    import errno

    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return _fail("FT825", f"registry {root}: no space left on the device ({e})",
                     "free disk space and publish again; no version was created")
    return _fail("FT825", f"registry {root}: cannot write: {e}",
                 "check the registry directory's permissions and free space; no version was created")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json_atomic(path: Path, data: Any) -> None:
    write_json(path, data, sort_keys=True, fsync=True)  # a manifest must survive a power cut


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    stage: str
    created_at: str
    path: Path


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ locking

    @contextmanager
    def lock(self, name: str, timeout_s: float = 30.0) -> Iterator[None]:
        """Exclusive per-name lock: an O_EXCL lock file with the holder's pid, host and time."""
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK
        deadline = time.monotonic() + timeout_s
        # the lock's content is written to a private file first and hard-linked into place: link()
        # fails if the lock exists (like O_EXCL) and a lock is never seen without its holder's pid
        mine = folder / f"{LOCK}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with open(mine, "w", encoding="utf-8") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "created": time.time()}, f)
        try:
            while True:
                try:
                    os.link(mine, path)
                    break
                except FileExistsError:
                    if self._break_if_stale(path):
                        continue
                    if time.monotonic() > deadline:
                        raise _fail("FT822", f"registry {name!r} is locked by another publish ({path})",
                                    "wait for it to finish; if no ftlang process is running, delete the lock file") from None
                    time.sleep(0.05)
        finally:
            os.unlink(mine)
        try:
            yield
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _break_if_stale(self, path: Path) -> bool:
        try:
            info = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            info = {}
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile: try again
        same_host = info.get("host") == socket.gethostname()
        pid = info.get("pid")
        dead = same_host and isinstance(pid, int) and not _pid_alive(pid)
        # ftlang's locks are never empty (see lock()); an empty or unreadable one was left by a killed
        # writer of another tool or version: stale once it is a moment old
        unreadable = not info and age > EMPTY_LOCK_GRACE_S
        if not (dead or unreadable or age > STALE_AFTER_S):
            return False
        # rename first, so two breakers cannot both delete a fresh lock taken in between
        grave = path.with_name(f"{LOCK}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, grave)
            os.unlink(grave)
        except FileNotFoundError:
            pass
        return True

    # ------------------------------------------------------------------ reading

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir()
                 if p.is_dir() and _VERSION.match(p.name) and (p / MANIFEST).is_file()]
        return sorted(found, key=lambda v: int(v[1:]))

    def manifest(self, name: str, version: str | None = None) -> dict:
        versions = self.versions(name)
        if not versions:
            raise _fail("FT820", f"no model {name!r} in registry {self.root}",
                        f"known: {', '.join(self.names()) or 'none'}; `ftlang registry list --registry {self.root}`")
        version = version or versions[-1]
        if version not in versions:
            raise _fail("FT820", f"model {name!r} has no version {version!r}", f"versions: {', '.join(versions)}")
        return json.loads((self.root / name / version / MANIFEST).read_text(encoding="utf-8"))

    def path(self, name: str, version: str | None = None) -> Path:
        m = self.manifest(name, version)
        return self.root / name / m["version"]

    def list(self) -> list[VersionInfo]:
        out = []
        for name in self.names():
            for v in self.versions(name):
                m = json.loads((self.root / name / v / MANIFEST).read_text(encoding="utf-8"))
                out.append(VersionInfo(name, v, m.get("stage", "staging"), m.get("created_at", ""), self.root / name / v))
        return out

    def production(self, name: str) -> str | None:
        for info in self.list():
            if info.name == name and info.stage == "production":
                return info.version
        return None

    # ------------------------------------------------------------------ writing

    def publish(self, name: str, artifacts: Mapping[str, str | Path], *, plan_hash: str,
                data_hashes: Mapping[str, str] | None = None, metrics: Mapping[str, float] | None = None,
                gates: Any = None, stage: str = "staging", extra: Mapping[str, Any] | None = None) -> str:
        """Copy artifacts (destination name → file or directory) into the next version; returns it."""
        if not _NAME.match(name):
            raise _fail("FT823", f"invalid registry model name {name!r}",
                        "use letters, digits, '.', '_' or '-' (starting with a letter or digit)")
        if stage not in STAGES:
            raise _fail("FT823", f"unknown stage {stage!r}", f"stages: {', '.join(STAGES)}")
        folder = self.root / name
        tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
        except OSError as e:
            raise _write_error(self.root, e) from e
        try:
            files: dict[str, str] = {}
            for dest, src in artifacts.items():
                src = Path(src)
                if src.is_dir():
                    for f in sorted(p for p in src.rglob("*") if p.is_file()):
                        rel = Path(dest) / f.relative_to(src)
                        _copy_file(f, tmp / rel)
                        files[rel.as_posix()] = sha256_file(tmp / rel)
                elif src.is_file():
                    _copy_file(src, tmp / dest)
                    files[Path(dest).as_posix()] = sha256_file(tmp / dest)
                else:
                    raise _fail("FT824", f"artifact {src} does not exist", "export the model before publishing")
            with self.lock(name):
                self._clean_temps(folder, keep=tmp)
                existing = self.versions(name)
                parent = existing[-1] if existing else None
                version = f"v{int(parent[1:]) + 1 if parent else 1}"
                if stage == "production":
                    self._archive_production(name)
                manifest = {
                    "name": name, "version": version, "parent": parent, "stage": stage,
                    "stage_history": [{"stage": stage, "at": _now()}],
                    "created_at": _now(), "plan_hash": plan_hash, "data_hashes": dict(data_hashes or {}),
                    "metrics": dict(metrics or {}), "gates": gates or [], "files": files, **dict(extra or {}),
                }
                _write_json_atomic(tmp / MANIFEST, manifest)
                os.rename(tmp, folder / version)  # atomic; fails rather than overwrite an existing version
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _write_error(self.root, e) from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return version

    def _archive_production(self, name: str) -> None:
        for v in self.versions(name):
            path = self.root / name / v / MANIFEST
            m = json.loads(path.read_text(encoding="utf-8"))
            if m.get("stage") == "production":
                m["stage"] = "archived"
                m.setdefault("stage_history", []).append({"stage": "archived", "at": _now()})
                _write_json_atomic(path, m)

    def promote(self, name: str, version: str, stage: str) -> dict:
        if stage not in STAGES:
            raise _fail("FT823", f"unknown stage {stage!r}", f"stages: {', '.join(STAGES)}")
        self.manifest(name, version)  # raises FT820 when unknown
        try:
            return self._promote(name, version, stage)
        except OSError as e:
            raise _write_error(self.root, e) from e

    def _promote(self, name: str, version: str, stage: str) -> dict:
        with self.lock(name):
            if stage == "production":
                self._archive_production(name)
            path = self.root / name / version / MANIFEST
            m = json.loads(path.read_text(encoding="utf-8"))
            if m.get("stage") != stage:
                m["stage"] = stage
                m.setdefault("stage_history", []).append({"stage": stage, "at": _now()})
                _write_json_atomic(path, m)
        return m

    def _clean_temps(self, folder: Path, keep: Path | None = None) -> list[Path]:
        """Remove leftover temp dirs of dead publishes (called under the lock)."""
        removed = []
        for p in folder.iterdir():
            if p.name.startswith(f"{LOCK}.tmp-") or p.name.startswith(f"{LOCK}.stale-"):
                pid_text = p.name.split("-", 2)[1] if p.name.startswith(f"{LOCK}.tmp-") else ""
                if not (pid_text.isdigit() and _pid_alive(int(pid_text))):
                    p.unlink(missing_ok=True)  # a lock holder killed before it linked its lock
                continue
            if not p.name.startswith(TMP_PREFIX) or p == keep:
                continue
            pid_text = p.name[len(TMP_PREFIX):].split("-", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
                continue  # a publish still copying (it copies before taking the lock)
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
        return removed

    # ------------------------------------------------------------------ verify

    def verify(self, name: str | None = None) -> tuple[list[str], list[str]]:
        """(problems, notes): re-hash every file of every version; clean dead publishes' temp dirs."""
        problems: list[str] = []
        notes: list[str] = []
        for n in ([name] if name else self.names()):
            folder = self.root / n
            if not folder.is_dir():
                problems.append(f"{n}: no such model")
                continue
            with self.lock(n):
                for p in self._clean_temps(folder):
                    notes.append(f"{n}: removed the temp dir of an interrupted publish ({p.name})")
                for child in folder.iterdir():
                    if child.is_dir() and not _VERSION.match(child.name) and not child.name.startswith(TMP_PREFIX):
                        notes.append(f"{n}: ignoring {child.name}/ (not a version)")
                    elif child.is_dir() and not (child / MANIFEST).is_file():
                        problems.append(f"{n}/{child.name}: no {MANIFEST}")
                for v in self.versions(n):
                    problems.extend(self._verify_version(n, v))
        return problems, notes

    def _verify_version(self, name: str, version: str) -> list[str]:
        base = self.root / name / version
        try:
            m = json.loads((base / MANIFEST).read_text(encoding="utf-8"))
        except ValueError as e:
            return [f"{name}/{version}: unreadable manifest: {e}"]
        out = []
        if m.get("version") != version or m.get("name") != name:
            out.append(f"{name}/{version}: manifest names {m.get('name')}/{m.get('version')}")
        listed: dict[str, str] = m.get("files", {})
        for rel, digest in sorted(listed.items()):
            f = base / rel
            if not f.is_file():
                out.append(f"{name}/{version}: missing {rel}")
            elif sha256_file(f) != digest:
                out.append(f"{name}/{version}: {rel} changed (sha256 mismatch)")
        for f in sorted(base.rglob("*")):
            rel = f.relative_to(base).as_posix()
            if f.is_file() and rel != MANIFEST and rel not in listed and not f.name.endswith(".tmp"):
                out.append(f"{name}/{version}: unlisted file {rel}")
        return out
