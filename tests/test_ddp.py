"""A real 2-process DDP fine-tune on the CPU (torchrun + gloo) through `ftlang run --launch`:
both ranks end with the same trainable weights, and rank 0 alone writes the run's artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from backend_helpers import chat_project  # noqa: E402

from ftlang.plan import LoraMethod  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow  # two processes importing torch/transformers on 2 shared cores: ~60 s
def test_two_process_ddp_ranks_agree(project, tiny_llama_dir):
    plan = chat_project(project, tiny_llama_dir, LoraMethod(r=4, alpha=8, dropout=0.1, targets=["q_proj", "v_proj"]),
                        train={"max_steps": 4, "save_steps": 2, "batch": 2, "lr": 5e-3},
                        hardware={"count": 2, "strategy": "ddp"})
    run = project / "runs" / "ddp"
    res = subprocess.run([sys.executable, "-m", "ftlang", "run", "--plan", str(plan), "--launch", "--out", str(run)],
                         cwd=project, capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "torch.distributed.run" in res.stderr and "--nproc_per_node 2" in res.stderr
    r0 = json.loads((run / "ranks" / "rank-0.json").read_text())
    r1 = json.loads((run / "ranks" / "rank-1.json").read_text())
    assert r0["global_step"] == r1["global_step"] == 4
    assert r0["trainable"] > 0 and r0["sha256"] == r1["sha256"]
    assert r0["data_cache_hit"] is False and r1["data_cache_hit"] is True  # tokenized once, by rank 0
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "done" and record["world_size"] == 2
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
