"""The GPU benchmark's code runs end to end on a tiny model on the CPU (`--cpu-smoke`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

pytest.importorskip("torch")
pytest.importorskip("peft")


def test_flops_formula_matches_the_usual_6n_for_full_finetuning():
    import gpu_bench

    cfg = gpu_bench.LLAMA32_1B
    n = gpu_bench.matmul_params(cfg)
    # Llama-3.2-1B: 1.236B parameters with tied embeddings; the LM head adds a matmul of V*h
    assert n == 1_235_814_400 - 2048 * 33  # every weight but the 33 norm vectors (embedding = head)
    seq = 2048
    attn = 4 * 16 * seq * 2048
    assert gpu_bench.flops_per_token(cfg, n, seq) == 6 * n + 3 * attn
    lora = gpu_bench.flops_per_token(cfg, 11_272_192, seq)
    assert lora == 4 * n + 2 * 11_272_192 + 3 * attn


def test_packed_batches_keep_rows_apart():
    import gpu_bench

    s = gpu_bench.Settings(gpu_bench.TINY, seq_len=64, batch=2, steps=1, warmup_steps=0, bf16=False)
    (b,) = gpu_bench.packed_batches(s, 1)
    mask, pos = b["attention_mask"][0, 0], b["position_ids"][0]
    starts = [i for i in range(64) if pos[i] == 0]
    assert len(starts) >= 2, "lognormal rows should pack several rows per sequence"
    second = starts[1]
    assert not mask[second, second - 1]  # the second row cannot see the first
    assert mask[second - 1, 0] and not mask[0, 1]  # causal inside a row
    assert b["labels"][0, second] == -100


def test_cpu_smoke_in_process_lora(tmp_path):
    import gpu_bench

    out = tmp_path / "r.json"
    assert gpu_bench.main(["--cpu-smoke", "--methods", "lora", "--steps", "3", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["method"] == "lora" and row["peft_tokens_per_s"] > 0 and row["trainable"] == 32_768
    # r·(d_in + d_out) summed over 7 matrices × 2 layers of the tiny Llama (h 64, kv 32, ffn 128), r = 16


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cpu_smoke_runs_every_method(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_bench.py"), "--cpu-smoke", "--steps", "3",
                           "--json", str(out)], capture_output=True, text=True, timeout=580, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    data = json.loads(out.read_text())
    methods = {r["method"]: r for r in data["rows"]}
    assert set(methods) == {"full", "lora", "qlora"}
    for name, row in methods.items():
        assert row["peft_tokens_per_s"] > 0, name
        assert row["peft_losses"] and all(x == x for x in row["peft_losses"]), name
        # ftlang's path (backend.methods + backend.train) trained the same rows with the same trainables
        assert row["ftlang_tokens_per_s"] and row["ftlang_tokens_per_s"] > 0, row["note"]
        assert row["ftlang_trainable"] == row["trainable"], name
        assert row["estimate_peak"] and row["estimate_peak"] > 0, row["note"]
    assert methods["lora"]["trainable"] < methods["full"]["trainable"]
    assert methods["lora"]["trainable"] == methods["qlora"]["trainable"]
    for name in ("lora", "qlora", "full"):
        assert f"[{name:5}]" in proc.stdout


def test_estimated_weight_bytes_match_what_the_backend_loads(tmp_path):
    import gpu_bench

    from ftlang.backend.methods import load_for_training

    s = gpu_bench.Settings(gpu_bench.TINY, seq_len=64, batch=2, steps=2, warmup_steps=0, bf16=True)
    root = gpu_bench.make_project(tmp_path / "proj")
    gpu_bench.save_base(s, root / "model")
    plan = gpu_bench.ftlang_plan(gpu_bench.write_recipe(root, "lora", s))
    model = load_for_training(plan)
    loaded = sum(p.numel() * p.element_size() for p in model.parameters())
    estimate = plan.resources.memory.weights_bytes
    assert abs(loaded - estimate) <= 0.25 * loaded, (estimate, loaded)


@pytest.mark.slow
def test_gpu_serve_cpu_smoke_runs_qlora_merge_and_serves(tmp_path):
    """bench/gpu_serve.py's steps (ftlang run QLoRA + merge, ftlang serve, 8 concurrent requests) on the CPU."""
    out = tmp_path / "serve.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_serve.py"), "--cpu-smoke", "--steps", "4",
                           "--json", str(out)], capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    report = json.loads(out.read_text())
    assert proc.returncode == 0, report
    steps = report["steps"]
    assert steps["qlora_run_merge"]["post_export_check"]["ok"] is True
    assert steps["qlora_run_merge"]["post_export_check"]["merged_vs_adapter_max_logit_diff"] < 1e-3
    assert steps["serve"]["answered"] == 8 and steps["serve"]["completion_tokens"] > 0
