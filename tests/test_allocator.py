"""`ftlang run` trains under jemalloc when the system has it (ftlang/allocator.py says why), and says which
allocator its memory figure was measured under."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftlang import allocator

REPO = Path(__file__).resolve().parent.parent


class _Exec(Exception):
    pass


@pytest.fixture
def captured_exec(monkeypatch):
    calls: list[tuple] = []

    def execve(path, args, env):
        calls.append((path, args, env))
        raise _Exec

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(allocator, "jemalloc_library", lambda: "libjemalloc.so.2")
    monkeypatch.setattr(allocator, "active_allocator", lambda: "system")
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("FTLANG_ALLOCATOR", "FTLANG_ALLOCATOR_REEXEC", "LD_PRELOAD"):
        monkeypatch.delenv(var, raising=False)
    return calls


def test_reexec_replaces_the_process_with_jemalloc_preloaded(captured_exec, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "libother.so")
    with pytest.raises(_Exec):
        allocator.reexec_under_jemalloc(["run", "recipe.ft", "--set", "lr=1e-3"])
    (path, args, env), = captured_exec
    assert path == sys.executable
    assert args == [sys.executable, "-m", "ftlang", "run", "recipe.ft", "--set", "lr=1e-3"]
    assert env["LD_PRELOAD"] == "libjemalloc.so.2 libother.so"  # the user's preloads are kept
    assert env["FTLANG_ALLOCATOR_REEXEC"] == "1"


@pytest.mark.parametrize("why", ["opted out", "already re-executed", "already loaded", "not installed", "not linux"])
def test_reexec_does_nothing_when_it_does_not_apply(captured_exec, monkeypatch, why):
    if why == "opted out":
        monkeypatch.setenv("FTLANG_ALLOCATOR", "system")
    elif why == "already re-executed":
        monkeypatch.setenv("FTLANG_ALLOCATOR_REEXEC", "1")
    elif why == "already loaded":
        monkeypatch.setattr(allocator, "active_allocator", lambda: "jemalloc")
    elif why == "not installed":
        monkeypatch.setattr(allocator, "jemalloc_library", lambda: None)
    else:
        monkeypatch.setattr(sys, "platform", "darwin")
    allocator.reexec_under_jemalloc(["run", "recipe.ft"])
    assert captured_exec == []


def test_only_the_command_line_of_a_training_command_reexecutes(monkeypatch):
    """main(argv) called from Python (tests, sweeps, fault runners) must never replace its caller."""
    from ftlang import cli

    seen: list[list[str]] = []
    monkeypatch.setattr(allocator, "reexec_under_jemalloc", seen.append)
    monkeypatch.setattr(sys, "argv", ["ftlang", "explain", "--list"])
    assert cli.main(["run", "--plan", "/nonexistent/plan.json"]) != 0
    assert seen == []
    cli.main()  # explain: not a training command
    assert seen == []
    monkeypatch.setattr(sys, "argv", ["ftlang", "run", "--plan", "/nonexistent/plan.json"])
    assert cli.main() != 0
    assert seen == [["run", "--plan", "/nonexistent/plan.json"]]


def test_active_allocator_reads_this_process_maps():
    expected = "jemalloc" if "jemalloc" in Path("/proc/self/maps").read_text(errors="replace") else "system"
    assert allocator.active_allocator() == expected


@pytest.mark.slow
def test_a_run_records_the_allocator_it_trained_under(tmp_path, tiny_llama_dir):
    """A real `ftlang run` process: under jemalloc when installed (same PID, same output), the C library's
    malloc with FTLANG_ALLOCATOR=system; run.json and the report say which."""
    pytest.importorskip("torch")
    from backend_helpers import chat_project

    from ftlang.plan import LoraMethod

    plan = chat_project(tmp_path, tiny_llama_dir, LoraMethod(r=4, alpha=8, targets=["q_proj", "v_proj"]),
                        train={"max_steps": 2, "logging_steps": 1}, eval={"every": "end"})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("FTLANG_ALLOCATOR_REEXEC", None)
    default = "jemalloc" if allocator.jemalloc_library() else "system"
    for choice, expected in ((None, default), ("system", "system")):
        run_env = {**env, "FTLANG_ALLOCATOR": choice} if choice else env
        out = tmp_path / "runs" / (choice or "default")
        p = subprocess.run([sys.executable, "-m", "ftlang", "run", "--plan", str(plan), "--out", str(out)],
                           cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        assert json.loads((out / "run.json").read_text())["allocator"] == expected
        measured_as = json.loads((out / "report.json").read_text())["memory"]["measured_as"]
        assert measured_as.endswith(f"; allocator: {expected}")
