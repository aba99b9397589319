"""Real engines for scale: `ftlang serve --engine vllm --print-command` (tested by shape: no GPU here)
and `ftlang registry export NAME --to DIR --format vllm|tgi`; non-LoRA adapters are refused with FT840."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

pytest.importorskip("peft")

from ftlang.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def adapters(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    from peft import LoraConfig, get_peft_model
    from tiny_models import build_random_lora
    from transformers import AutoModelForCausalLM

    from ftlang.backend.adapters import AdapterConfig, inject_adapters, save_adapter

    root = tmp_path_factory.mktemp("engine-adapters")
    out = {"small": build_random_lora(tiny_llama_dir, root / "small", 1)}  # r = 8
    wide = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)),
                          LoraConfig(r=24, target_modules=["q_proj", "v_proj"]))
    wide.save_pretrained(str(root / "wide"))
    out["wide"] = root / "wide"
    save_adapter(inject_adapters(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), AdapterConfig(bottleneck=4)),
                 root / "bottle")
    out["bottle"] = root / "bottle"
    return out


@pytest.fixture
def registry(adapters, tmp_path) -> Path:
    from ftlang.registry import Registry

    reg = Registry(tmp_path / "reg")
    reg.publish("support", {"adapter": adapters["wide"]}, plan_hash="h", extra={"base": "HuggingFaceTB/SmolLM2-135M"})
    reg.publish("bottle", {"adapter": adapters["bottle"]}, plan_hash="h")
    return tmp_path / "reg"


def _flags(cmd: list[str], flag: str) -> list[str]:
    """The values after `flag`, up to the next flag."""
    i = cmd.index(flag) + 1
    out = []
    while i < len(cmd) and not cmd[i].startswith("--"):
        out.append(cmd[i])
        i += 1
    return out


def test_vllm_command_from_adapters(adapters, capsys):
    rc = main(["serve", "--engine", "vllm", "--print-command", "--base", "HuggingFaceTB/SmolLM2-135M",
               "--adapter", f"small={adapters['small']}", "--adapter", f"wide={adapters['wide']}", "--port", "8100"])
    assert rc == 0
    cmd = shlex.split(capsys.readouterr().out.strip())
    assert cmd[:3] == ["vllm", "serve", "HuggingFaceTB/SmolLM2-135M"]
    assert "--enable-lora" in cmd and _flags(cmd, "--host") == ["127.0.0.1"] and _flags(cmd, "--port") == ["8100"]
    assert _flags(cmd, "--lora-modules") == [f"small={adapters['small']}", f"wide={adapters['wide']}"]
    assert _flags(cmd, "--max-lora-rank") == ["32"]  # r = 24 rounded up to a rank vLLM accepts
    assert _flags(cmd, "--max-loras") == ["2"] and _flags(cmd, "--served-model-name") == ["base"]


def test_vllm_command_from_the_registry_refuses_a_bottleneck_adapter(registry, capsys):
    rc = main(["serve", "--engine", "vllm", "--print-command", "--base", "b", "--registry", str(registry)])
    err = capsys.readouterr().err
    assert rc == 1 and "FT840" in err and "bottleneck" in err and "without --engine" in err


def test_vllm_without_adapters_needs_no_lora_flags(capsys):
    assert main(["serve", "--engine", "vllm", "--print-command", "--base", "m"]) == 0
    assert "--enable-lora" not in capsys.readouterr().out


def test_registry_export_for_vllm(registry, tmp_path, capsys):
    out = tmp_path / "deploy"
    assert main(["registry", "export", "support", "--registry", str(registry), "--to", str(out), "--format", "vllm"]) == 0
    assert sorted(p.name for p in (out / "support").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((out / "support" / "adapter_config.json").read_text())["r"] == 24
    script = (out / "vllm.sh").read_text()
    assert os.access(out / "vllm.sh", os.X_OK)
    cmd = shlex.split(script.splitlines()[-1])
    assert cmd[:4] == ["exec", "vllm", "serve", "HuggingFaceTB/SmolLM2-135M"]
    assert _flags(cmd, "--lora-modules") == [f"support={(out / 'support').resolve()}"]
    # the same directory again: refused, nothing overwritten
    assert main(["registry", "export", "support", "--registry", str(registry), "--to", str(out), "--format", "vllm"]) == 1
    assert "FT840" in capsys.readouterr().err


def test_registry_export_for_tgi(registry, tmp_path):
    out = tmp_path / "tgi"
    assert main(["registry", "export", "support", "v1", "--registry", str(registry), "--to", str(out),
                 "--format", "tgi"]) == 0
    env = dict(line.split("=", 1) for line in (out / "tgi.env").read_text().splitlines() if not line.startswith("#"))
    assert env == {"MODEL_ID": "HuggingFaceTB/SmolLM2-135M", "LORA_ADAPTERS": "support=/data/support"}
    assert (out / "support" / "adapter_model.safetensors").is_file()


def test_registry_export_refuses_bottleneck_and_unknown(registry, tmp_path, capsys):
    assert main(["registry", "export", "bottle", "--registry", str(registry), "--to", str(tmp_path / "x"),
                 "--format", "tgi"]) == 1
    err = capsys.readouterr().err
    assert "FT840" in err and "bottleneck" in err and not (tmp_path / "x" / "bottle").exists()
    assert main(["registry", "export", "nope", "--registry", str(registry), "--to", str(tmp_path / "y"),
                 "--format", "vllm"]) == 1
    assert "FT820" in capsys.readouterr().err


def test_serve_refuses_mixed_peft_methods_with_a_diagnostic(tiny_llama_dir, adapters, tmp_path):
    from peft import IA3Config, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftlang.diagnostics import DiagnosticError
    from ftlang.serve.models import ModelPool

    get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)),
                   IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"])
                   ).save_pretrained(str(tmp_path / "ia3"))
    with pytest.raises(DiagnosticError) as e:
        ModelPool(str(tiny_llama_dir), {"lora": str(adapters["small"]), "ia3": str(tmp_path / "ia3")})
    d = e.value.diagnostics[0]
    assert d.code == "FT840" and "IA3" in d.message and "LORA" in d.message and "--port" in d.help
