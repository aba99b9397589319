"""Fault injection: SIGKILL at chosen points, a full disk, and what must survive them.

- registry: a publisher process is SIGKILLed at random moments many times; after each kill
  `ftlang registry verify` is clean and every visible version is complete;
- disk full: a write raising OSError(ENOSPC) gives a clear diagnostic and leaves no partial artifact;
- training: a real `ftlang run` on a tiny model is SIGKILLed before its first checkpoint, while a
  checkpoint is being written, and after the last step; `--resume` then ends with the same adapter
  weights as an uninterrupted run (max abs diff <= 1e-6). The train helper's tests/test_resume.py
  covers one basic kill; these cover the other points.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def ftlang(*args: str, cwd: Path | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftlang", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


# ---------------------------------------------------------------------------- registry under SIGKILL

PUBLISHER = textwrap.dedent("""
    import sys, time
    from ftlang.registry import Registry
    reg = Registry(sys.argv[1])
    mode = sys.argv[3]
    print("ready", flush=True)
    while True:
        if mode == "publish":
            reg.publish("tiny", {"adapter": sys.argv[2]}, plan_hash="p" * 64, metrics={"loss": 1.0})
        else:  # promote the versions round-robin: stage rewrites under the lock
            for v in reg.versions("tiny"):
                reg.promote("tiny", v, "production")
""")


def _artifacts(root: Path) -> Path:
    art = root / "adapter"
    art.mkdir()
    rng = random.Random(0)
    for i in range(6):  # several files: a kill can land between any two copies
        (art / f"shard-{i}.safetensors").write_bytes(rng.randbytes(700_000))
    (art / "adapter_config.json").write_text(json.dumps({"r": 8}))
    return art


def _assert_registry_consistent(reg_dir: Path, art: Path) -> list[str]:
    from ftlang.registry import MANIFEST, Registry, sha256_file

    proc = ftlang("registry", "verify", "--registry", str(reg_dir))
    lock = reg_dir / "tiny" / ".lock"
    if proc.returncode != 0 and "FT822" in proc.stdout + proc.stderr and lock.is_file() and not lock.read_text():
        pytest.fail("the SIGKILL landed between the lock's O_EXCL open and its pid write: an empty lock now "
                    "blocks the registry for STALE_AFTER_S (see test_a_lock_left_empty_by_a_killed_holder_...)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reg = Registry(reg_dir)
    versions = reg.versions("tiny")
    expected = {f"adapter/{p.name}": sha256_file(p) for p in art.iterdir()}
    for v in versions:
        m = json.loads((reg_dir / "tiny" / v / MANIFEST).read_text())
        assert m["version"] == v and m["files"] == expected, f"{v} is partial: {sorted(m['files'])}"
    # nothing half-written is visible as a version: every entry is a full version or a temp dir
    for child in (reg_dir / "tiny").iterdir():
        assert child.name in versions or child.name.startswith((".tmp-", ".lock")), child.name
    assert sum(1 for i in reg.list() if i.stage == "production") <= 1
    return versions


def _kill_loop(reg_dir: Path, art: Path, mode: str, kills: int, seed: int) -> int:
    rng = random.Random(seed)
    landed = 0
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(reg_dir), str(art), mode],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        landed += proc.returncode == -signal.SIGKILL
        _assert_registry_consistent(reg_dir, art)
    return landed


@pytest.mark.timeout(600)
def test_sigkill_during_publish_never_leaves_a_partial_version(tmp_path):
    from ftlang.registry import Registry

    reg_dir, art = tmp_path / "registry", _artifacts(tmp_path)
    landed = _kill_loop(reg_dir, art, "publish", kills=12, seed=1)
    assert landed == 12  # every publisher died by the signal, mid-loop
    before = Registry(reg_dir).versions("tiny")
    # a killed holder's lock (dead pid) must not block the next publish
    version = Registry(reg_dir).publish("tiny", {"adapter": art}, plan_hash="q" * 64)
    after = _assert_registry_consistent(reg_dir, art)
    assert version not in before and after[-1] == version
    assert not [p for p in (reg_dir / "tiny").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_during_publish_and_promote_many_times(tmp_path):
    reg_dir, art = tmp_path / "registry", _artifacts(tmp_path)
    assert _kill_loop(reg_dir, art, "publish", kills=40, seed=2) == 40
    assert _kill_loop(reg_dir, art, "promote", kills=20, seed=3) == 20
    assert len(_assert_registry_consistent(reg_dir, art)) >= 1


# ---------------------------------------------------------------------------- disk full


def _enospc_after(n_ok: int):
    """A shutil.copy2 stand-in that copies n_ok files, then fails like a full disk (after writing a bit)."""
    import shutil

    real = shutil.copy2
    calls = {"n": 0}

    def copy2(src, dst, *a, **kw):
        calls["n"] += 1
        if calls["n"] > n_ok:
            with open(dst, "wb") as f:  # a partial file, as a real ENOSPC leaves behind
                f.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, *a, **kw)

    return copy2


def test_disk_full_during_publish_is_a_diagnostic_and_leaves_no_version(tmp_path, monkeypatch):
    import ftlang.registry as registry
    from ftlang.diagnostics import DiagnosticError

    reg_dir, art = tmp_path / "registry", _artifacts(tmp_path)
    reg = registry.Registry(reg_dir)
    assert reg.publish("tiny", {"adapter": art}, plan_hash="a" * 64) == "v1"
    monkeypatch.setattr(registry.shutil, "copy2", _enospc_after(3))
    with pytest.raises(DiagnosticError) as info:
        reg.publish("tiny", {"adapter": art}, plan_hash="b" * 64)
    monkeypatch.undo()
    # the old state survives whole, and nothing of the failed publish is left
    assert _assert_registry_consistent(reg_dir, art) == ["v1"]
    assert [p.name for p in (reg_dir / "tiny").iterdir() if not p.name.startswith(".lock")] == ["v1"]
    (diag,) = info.value.diagnostics[:1]
    assert diag.code.startswith("FT8") and "space" in (diag.message + (diag.help or "")).lower()


def test_disk_full_writing_the_manifest_leaves_no_version(tmp_path, monkeypatch):
    import ftlang.registry as registry

    reg_dir, art = tmp_path / "registry", _artifacts(tmp_path)
    reg = registry.Registry(reg_dir)
    real_fsync = os.fsync

    def full(fd):  # the manifest is the last file written before the rename
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(registry.os, "fsync", full)
    from ftlang.diagnostics import DiagnosticError

    with pytest.raises(DiagnosticError) as info:
        reg.publish("tiny", {"adapter": art}, plan_hash="b" * 64)
    assert info.value.diagnostics[0].code.startswith("FT8")
    monkeypatch.setattr(registry.os, "fsync", real_fsync)
    assert reg.versions("tiny") == []
    assert not [p for p in (reg_dir / "tiny").iterdir() if p.name.startswith(".tmp-")]


# the SIGKILL loop first found this: a holder killed between the O_EXCL open of .lock and the pid write
# left an EMPTY lock that blocked verify/publish for 600 s (fixed: the lock is hard-linked from a full file)
def test_a_lock_left_empty_by_a_killed_holder_does_not_block(tmp_path):
    from ftlang.registry import Registry

    reg_dir, art = tmp_path / "registry", _artifacts(tmp_path)
    reg = Registry(reg_dir)
    reg.publish("tiny", {"adapter": art}, plan_hash="a" * 64)
    (reg_dir / "tiny" / ".lock").write_text("")  # what SIGKILL right after os.open(O_EXCL) leaves
    os.utime(reg_dir / "tiny" / ".lock", (time.time() - 5, time.time() - 5))
    proc = ftlang("registry", "verify", "--registry", str(reg_dir), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------- training under SIGKILL

#: runs `ftlang ...` with one fault point armed. At the point it writes FT_FAULT_FLAG and holds (the
#: test then SIGKILLs it), or raises ENOSPC like a full disk. Injection by monkeypatching the real
#: functions the run calls, so everything before and after the point is the real code path.
FAULT_RUNNER = textwrap.dedent('''
    import errno, os, sys, time
    from pathlib import Path

    point = os.environ["FT_FAULT"]
    flag = Path(os.environ["FT_FAULT_FLAG"])

    def hold():
        flag.write_text(point)
        time.sleep(600)

    if point == "before_first_checkpoint":
        import transformers.trainer as tt

        def _save_checkpoint(self, *a, **k):
            hold()
        tt.Trainer._save_checkpoint = _save_checkpoint
    elif point in ("mid_checkpoint_save", "disk_full_checkpoint"):
        import torch
        real_save, seen = torch.save, []

        def save(obj, f, *a, **k):
            if point == "disk_full_checkpoint" and str(f).endswith("optimizer.pt") and len(seen) == 1:
                with open(f, "wb") as out:
                    out.write(b"\\0" * 100)  # a partial file, then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
            real_save(obj, f, *a, **k)
            if str(f).endswith("optimizer.pt"):
                seen.append(f)
                if point == "mid_checkpoint_save" and len(seen) == 2:
                    hold()  # the 2nd checkpoint has weights + optimizer, not yet scheduler/rng/state
        torch.save = save
    elif point == "after_last_step":
        import ftlang.backend.artifacts as art

        def save_trained(*a, **k):
            hold()
        art.save_trained = save_trained
    elif point == "mid_adapter_save":
        import ftlang.backend.artifacts as art

        def _swap_in(tmp, final):
            hold()  # the adapter is fully written to its temp dir, not yet renamed into place
        art._swap_in = _swap_in
    else:
        raise SystemExit(f"unknown fault point {point}")

    from ftlang.cli import main
    sys.exit(main(sys.argv[1:]))
''')

STEPS = 12


def _adapter(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    import torch

    assert a.keys() == b.keys() and a
    return max(torch.max(torch.abs(a[k].float() - b[k].float())).item() for k in a)


@pytest.fixture(scope="module")
def train_project(tmp_path_factory, tiny_llama_dir):
    """A tiny LoRA plan (dropout on: the resumed RNG state matters) and its uninterrupted run."""
    pytest.importorskip("torch")
    from backend_helpers import chat_project

    from ftlang.plan import LoraMethod

    root = tmp_path_factory.mktemp("faultproj")
    plan = chat_project(root, tiny_llama_dir, LoraMethod(r=4, alpha=8, dropout=0.1, targets=["q_proj", "v_proj"]),
                        # constant lr: an extra or a skipped step after a resume changes the weights
                        train={"max_steps": STEPS, "save_steps": 4, "logging_steps": 2, "lr": 5e-3,
                               "schedule": "constant"},
                        eval={"every": "end"})
    straight = ftlang("run", "--plan", str(plan), "--out", "runs/straight", cwd=root, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    return root, plan, _adapter(root / "runs" / "straight")


def _run_with_fault(root: Path, plan: Path, point: str, out: Path) -> subprocess.Popen:
    script = root / "fault_runner.py"
    script.write_text(FAULT_RUNNER)
    env = {**ENV, "FT_FAULT": point, "FT_FAULT_FLAG": str(root / f"flag-{point}")}
    return subprocess.Popen([sys.executable, str(script), "run", "--plan", str(plan), "--out", str(out)],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_at(root: Path, plan: Path, point: str) -> Path:
    out = root / "runs" / point
    flag = root / f"flag-{point}"
    flag.unlink(missing_ok=True)
    proc = _run_with_fault(root, plan, point, out)
    deadline = time.monotonic() + 500
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    reached = flag.exists()
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert reached, f"the run never reached {point} (rc {proc.returncode}): {err[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not (out / "adapter").exists()
    return out


def _completed_checkpoints(run: Path) -> list[str]:
    from ftlang.backend.checkpoint import complete_checkpoints

    return [p.name for p in complete_checkpoints(run / "checkpoints")] if (run / "checkpoints").is_dir() else []


def _resume_and_compare(root: Path, plan: Path, run: Path, straight: dict) -> dict:
    resumed = ftlang("run", "--plan", str(plan), "--resume", str(run), cwd=root, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "done" and record["global_step"] == STEPS
    assert _max_diff(straight, _adapter(run)) <= 1e-6
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS  # no step logged twice after the resume
    return record


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigkill_before_the_first_checkpoint_then_resume(train_project):
    root, plan, straight = train_project
    run = _kill_at(root, plan, "before_first_checkpoint")
    assert _completed_checkpoints(run) == []  # steps 1..4 ran, nothing saved yet
    record = _resume_and_compare(root, plan, run, straight)
    assert record.get("resumed_from") in (None, "")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigkill_in_the_middle_of_a_checkpoint_save_then_resume(train_project):
    root, plan, straight = train_project
    run = _kill_at(root, plan, "mid_checkpoint_save")
    half = run / "checkpoints" / "checkpoint-8"
    assert half.is_dir() and (half / "optimizer.pt").is_file()
    assert _completed_checkpoints(run) == ["checkpoint-4"]  # the half-written one is not resumable
    record = _resume_and_compare(root, plan, run, straight)
    assert Path(record["resumed_from"]).name == "checkpoint-4"


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("point", ["after_last_step", "mid_adapter_save"])
def test_sigkill_after_the_last_step_then_resume(train_project, point):
    root, plan, straight = train_project
    run = _kill_at(root, plan, point)
    assert f"checkpoint-{STEPS}" in _completed_checkpoints(run)
    record = _resume_and_compare(root, plan, run, straight)
    assert Path(record["resumed_from"]).name == f"checkpoint-{STEPS}"
    assert not [p for p in run.iterdir() if p.name.startswith(".adapter.tmp")]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_disk_full_while_checkpointing_is_a_diagnostic_and_resumable(train_project):
    root, plan, straight = train_project
    out = root / "runs" / "disk_full"
    proc = _run_with_fault(root, plan, "disk_full_checkpoint", out)
    _, err = proc.communicate(timeout=600)
    # the partial checkpoint is never taken for a complete one, and no adapter was produced
    assert _completed_checkpoints(out) == ["checkpoint-4"]
    assert not (out / "adapter").exists()
    assert "Traceback" not in err
    assert proc.returncode == 1 and "FT714" in err and "space" in err.lower(), err[-500:]
    # with the disk freed, the run resumes from the last complete checkpoint to the same weights
    _resume_and_compare(root, plan, out, straight)
