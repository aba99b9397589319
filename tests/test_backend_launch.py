"""hardware { count, nodes, strategy } → the launch command and its generated accelerate config."""

from __future__ import annotations

import json
import sys

import pytest
from backend_helpers import tiny_plan

from ftlang.backend.launch import accelerate_config, check_installed, launch_command
from ftlang.diagnostics import DiagnosticError
from ftlang.plan import LoraMethod

LORA = LoraMethod(targets=["q_proj"])


def _plan(tmp_path, **hw):
    (tmp_path / "m").mkdir(exist_ok=True)
    return tiny_plan(tmp_path / "m", LORA, root=tmp_path, hardware=hw, train={"grad_accum": 4, "precision": "bf16"})


def test_single_device_runs_ftlang_directly(tmp_path):
    cmd = launch_command(_plan(tmp_path), run_dir="runs/x")
    assert cmd[:4] == [sys.executable, "-m", "ftlang", "run"]
    assert cmd[-2:] == ["--out", "runs/x"] and "--recipe" in cmd


def test_cpu_ddp_uses_torchrun(tmp_path):
    cmd = launch_command(_plan(tmp_path, count=2, strategy="ddp", device="cpu"))
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "2" and cmd[cmd.index("--nnodes") + 1] == "1"
    assert "--standalone" in cmd and cmd[cmd.index("-m", 3):][:3] == ["-m", "ftlang", "run"]


@pytest.mark.parametrize("strategy,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP")])
def test_gpu_strategies_use_accelerate_with_a_generated_config(tmp_path, strategy, kind):
    plan = _plan(tmp_path, gpu="A100-40GB", count=4, nodes=2, strategy=strategy)
    cmd = launch_command(plan)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    cfg = json.loads(open(cmd[cmd.index("--config_file") + 1]).read())
    assert cfg == accelerate_config(plan)
    assert cfg["distributed_type"] == kind and cfg["num_processes"] == 8 and cfg["num_machines"] == 2
    assert cfg["mixed_precision"] == "bf16" and "main_process_ip" in cfg
    if strategy == "fsdp":
        assert cfg["fsdp_config"]["fsdp_use_orig_params"] is True


def test_deepspeed_config_or_a_diagnostic(tmp_path):
    import importlib.util

    plan = _plan(tmp_path, gpu="A100-40GB", count=2, strategy="deepspeed")
    cfg = accelerate_config(plan)
    assert cfg["distributed_type"] == "DEEPSPEED"
    assert cfg["deepspeed_config"]["gradient_accumulation_steps"] == 4
    assert launch_command(plan)[1:3] == ["-m", "accelerate.commands.launch"]  # the plan's command, anywhere
    if importlib.util.find_spec("deepspeed") is None:  # the launching machine's check
        with pytest.raises(DiagnosticError) as e:
            check_installed(plan)
        assert e.value.diagnostics[0].code == "FT711" and "pip install deepspeed" in e.value.diagnostics[0].help


def test_fsdp_on_cpu_is_refused(tmp_path):
    with pytest.raises(DiagnosticError) as e:
        launch_command(_plan(tmp_path, count=2, strategy="fsdp", device="cpu"))
    assert e.value.diagnostics[0].code == "FT711"


def test_launch_module_stays_torch_free():
    import subprocess

    code = ("import sys, ftlang.backend.launch, ftlang.backend.run, ftlang.backend.train, ftlang.commands.run; "
            "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_executor_code_is_explained():
    import re
    from pathlib import Path

    from ftlang.codes import lookup as explain

    mine = ("load.py", "methods.py", "adapters.py", "train.py", "run.py", "faults.py", "launch.py", "checkpoint.py")
    backend = Path(__file__).resolve().parent.parent / "ftlang" / "backend"
    codes = {c for name in mine for c in re.findall(r'"(FT\d{3})"', (backend / name).read_text())}
    assert {"FT704", "FT705", "FT707", "FT711"} <= codes
    missing = sorted(c for c in codes if explain(c) is None)
    assert not missing, missing


def test_plan_launch_cmd_prints_the_launch(tmp_path):
    import shlex
    import subprocess

    (tmp_path / ".git").mkdir()
    model = tmp_path / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 400, "max_position_embeddings": 512,
    }))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "chat.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    recipe = tmp_path / "r.ft"
    recipe.write_text(
        'recipe tiny {\n  model = local("models/tiny")\n  data d = chat_jsonl("data/chat.jsonl")\n'
        '  dataset train = d\n  split train { validation = 10% }\n'
        '  method lora { r = 8, alpha = 16, targets = [q_proj, v_proj] }\n'
        '  train { lr = 2e-4, epochs = 1, batch = 2 }\n'
        '  hardware { device = cpu, count = 2, strategy = ddp }\n'
        '  eval { metrics = [perplexity], gate perplexity < 100 }\n}\n')
    res = subprocess.run([sys.executable, "-m", "ftlang", "plan", str(recipe), "--launch-cmd"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    cmd = shlex.split(res.stdout.strip())
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and cmd[cmd.index("--nproc_per_node") + 1] == "2"
    i = cmd.index("run")
    assert cmd[i - 2:i] == ["-m", "ftlang"] and cmd[i + 1] == str(recipe) and cmd[i + 2:i + 4] == ["--recipe", "tiny"]
