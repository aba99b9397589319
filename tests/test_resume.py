"""A real `ftlang run` subprocess SIGKILLed after a checkpoint, then `--resume`d, ends with the same
adapter weights as an uninterrupted run with the same seed (max abs diff <= 1e-6 on the CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from backend_helpers import chat_project  # noqa: E402

from ftlang.plan import LoraMethod  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
STEPS = 20


def ftlang(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftlang", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=ENV)


def _adapter(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def _plan(project: Path, tiny_llama_dir: Path, steps: int = STEPS) -> Path:
    # dropout on, so the resumed RNG state matters too
    return chat_project(project, tiny_llama_dir, LoraMethod(r=4, alpha=8, dropout=0.1, targets=["q_proj", "v_proj"]),
                        train={"max_steps": steps, "save_steps": 4, "logging_steps": 2, "lr": 5e-3},
                        eval={"every": "end"})


@pytest.mark.slow  # three real `ftlang run` subprocesses: ~100 s on 2 shared cores
def test_sigkill_then_resume_matches_uninterrupted_run(project, tiny_llama_dir):
    import torch

    plan = _plan(project, tiny_llama_dir)
    straight = ftlang("run", "--plan", str(plan), "--out", "runs/straight", cwd=project)
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed = project / "runs" / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "ftlang", "run", "--plan", str(plan), "--out", str(killed)],
                            cwd=project, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / "checkpoints" / "checkpoint-4" / "ftlang-complete.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the run ended before its first checkpoint"
    status = json.loads((killed / "run.json").read_text())["status"]
    assert status == "running" and not (killed / "adapter").exists()

    resumed = ftlang("run", "--plan", str(plan), "--resume", str(killed), cwd=project)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from checkpoint-" in resumed.stderr
    record = json.loads((killed / "run.json").read_text())
    assert record["status"] == "done" and record["global_step"] == STEPS
    step = int(Path(record["resumed_from"]).name.split("-")[1])
    assert 4 <= step < STEPS

    a, b = _adapter(project / "runs" / "straight"), _adapter(killed)
    assert a.keys() == b.keys() and a
    diff = max(torch.max(torch.abs(a[k].float() - b[k].float())).item() for k in a)
    assert diff <= 1e-6, diff
    # the metrics history is the uninterrupted one: no duplicated steps after the resume
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if "loss" in r]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == STEPS


@pytest.mark.slow
def test_resume_refuses_a_changed_plan(project, tiny_llama_dir):
    plan = _plan(project, tiny_llama_dir, steps=2)
    run = project / "runs" / "r"
    first = ftlang("run", "--plan", str(plan), "--out", str(run), cwd=project)
    assert first.returncode == 0, first.stderr[-3000:]
    from ftlang.plan import Plan

    changed = Plan.from_json(plan.read_text())
    changed = changed.model_copy(update={"train": changed.train.model_copy(update={"lr": 1e-3})}).seal()
    other = project / "changed.json"
    other.write_text(changed.to_json())
    again = ftlang("run", "--plan", str(other), "--resume", str(run), cwd=project)
    assert again.returncode == 1
    assert "FT707" in again.stderr and "differs" in again.stderr


def test_resume_without_a_run_is_a_diagnostic(project, tiny_llama_dir):
    plan = _plan(project, tiny_llama_dir)
    res = ftlang("run", "--plan", str(plan), "--resume", cwd=project)
    assert res.returncode == 1 and "FT708" in res.stderr


@pytest.mark.slow
def test_out_dir_holding_a_run_is_refused_without_resume(project, tiny_llama_dir):
    plan = _plan(project, tiny_llama_dir, steps=2)
    run = project / "runs" / "once"
    assert ftlang("run", "--plan", str(plan), "--out", str(run), cwd=project).returncode == 0
    again = ftlang("run", "--plan", str(plan), "--out", str(run), cwd=project)
    assert again.returncode == 1 and "FT709" in again.stderr and "--resume" in again.stderr
    done = ftlang("run", "--plan", str(plan), "--resume", str(run), cwd=project)
    assert done.returncode == 0 and "already finished" in done.stderr


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_run_resumes(project, tiny_llama_dir):
    plan = _plan(project, tiny_llama_dir)
    run = project / "runs" / "sigint"
    proc = subprocess.Popen([sys.executable, "-m", "ftlang", "run", "--plan", str(plan), "--out", str(run)],
                            cwd=project, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marker = run / "checkpoints" / "checkpoint-4" / "ftlang-complete.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "FT712" in err and "--resume" in err
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    resumed = ftlang("run", "--plan", str(plan), "--resume", str(run), cwd=project)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["status"] == "done"
