"""Every way `ftlang run` ends leaves run.json with a final status and what ended it: `failed` with the
diagnostics (a data-stage error such as FT618, an eval-stage error, an internal error), `interrupted`
(SIGTERM or Ctrl-C, in any stage), `done`; and a `--resume` of a run that failed before training
starts cleanly. Signals are sent to a real `ftlang run` subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from backend_helpers import chat_project  # noqa: E402

from ftlang.diagnostics import DiagnosticError, error  # noqa: E402
from ftlang.plan import LoraMethod, Plan  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
LORA = LoraMethod(r=4, alpha=8, targets=["q_proj", "v_proj"])


def ftlang(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftlang", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=ENV)


def record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _plan(project: Path, tiny_llama_dir: Path) -> Path:
    return chat_project(project, tiny_llama_dir, LORA, train={"max_steps": 2, "max_seq_len": 40, "save_steps": 2})


def test_a_data_stage_failure_says_failed_and_a_resume_starts_clean(project, tiny_llama_dir):
    plan = _plan(project, tiny_llama_dir)
    data = project / "data" / "chat.jsonl"
    good = data.read_text()
    long_row = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
    data.write_text(good + json.dumps(long_row) + "\n")
    run = project / "runs" / "bad-data"

    failed = ftlang("run", "--plan", str(plan), "--out", str(run), cwd=project)
    assert failed.returncode == 1 and "FT618" in failed.stderr and "Traceback" not in failed.stderr
    rec = record(run)
    assert rec["status"] == "failed" and rec["exit_code"] == 1 and rec["error"].startswith("FT618")
    (diag,) = [d for d in rec["diagnostics"] if d["severity"] == "error"]
    line = len(good.splitlines()) + 1
    assert diag["code"] == "FT618" and diag["file"].endswith("chat.jsonl") and diag["line"] == line
    assert rec["attempts"][-1]["status"] == "failed" and "ended" in rec
    assert not (run / "checkpoints").exists()

    data.write_text(good)  # the data is fixed; the plan (and its hash) is the same
    resumed = ftlang("run", "--plan", str(plan), "--resume", str(run), cwd=project)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "no complete checkpoint yet, starting from step 0" in resumed.stderr
    rec = record(run)
    assert rec["status"] == "done" and rec["exit_code"] == 0 and rec["global_step"] == 2
    assert "error" not in rec and rec["diagnostics"] == [] and rec["resumed_from"] is None
    assert [a["status"] for a in rec["attempts"]] == ["failed", "done"]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


#: `ftlang run` with the data stage held (it writes FT_FLAG, then waits to be signalled)
HELD_IN_DATA = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    import ftlang.data.prepare as prep

    def prepare(*a, **k):
        Path(os.environ["FT_FLAG"]).write_text("data")
        time.sleep(600)
    prep.prepare = prepare

    from ftlang.cli import main
    sys.exit(main(sys.argv[1:]))
''')


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, id="SIGTERM"),
                                 pytest.param(signal.SIGINT, id="SIGINT", marks=pytest.mark.slow)])
def test_a_signal_in_the_data_stage_says_interrupted(project, tiny_llama_dir, sig):
    plan = _plan(project, tiny_llama_dir)
    script, flag, run = project / "held.py", project / "flag", project / "runs" / "held"
    script.write_text(HELD_IN_DATA)
    proc = subprocess.Popen([sys.executable, str(script), "run", "--plan", str(plan), "--out", str(run)],
                            cwd=project, env={**ENV, "FT_FLAG": str(flag)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert flag.exists(), proc.stderr.read() if proc.poll() is not None else "the data stage was never reached"
    assert record(run)["status"] == "running"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "FT712" in err and "--resume" in err
    rec = record(run)
    assert rec["status"] == "interrupted" and rec["exit_code"] == 130
    assert [d["code"] for d in rec["diagnostics"]] == ["FT712"]


def test_an_internal_error_is_recorded_as_failed(project, tiny_llama_dir, monkeypatch):
    import ftlang.data.prepare as prep
    from ftlang.backend.run import execute

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(prep, "prepare", broken)
    plan = Plan.from_json(_plan(project, tiny_llama_dir).read_text())
    run = project / "runs" / "bug"
    with pytest.raises(ZeroDivisionError):  # the CLI prints it as an internal error (exit 70)
        execute(plan, run_dir=run, log=lambda s: None)
    rec = record(run)
    assert rec["status"] == "failed" and rec["exit_code"] == 70
    assert rec["error"] == "internal error: ZeroDivisionError: a bug" and rec["diagnostics"] == []


def test_an_eval_stage_failure_says_failed_with_its_diagnostic(project, tiny_llama_dir, monkeypatch):
    import ftlang.backend.finish as finish
    from ftlang.backend.run import execute

    def after_training(ctx):
        raise DiagnosticError(error("FT814", "export could not be written: disk on fire", None))

    monkeypatch.setattr(finish, "after_training", after_training)
    plan = Plan.from_json(_plan(project, tiny_llama_dir).read_text())
    run = project / "runs" / "eval"
    with pytest.raises(DiagnosticError):
        execute(plan, run_dir=run, log=lambda s: None)
    rec = record(run)
    assert rec["status"] == "failed" and rec["exit_code"] == 1 and rec["global_step"] == 2
    assert [d["code"] for d in rec["diagnostics"]] == ["FT814"] and rec["error"].startswith("FT814")
    assert (run / "adapter").is_dir()  # trained and saved before the eval stage failed
