"""Saving the trained result (adapter/ or model/) atomically, and loading it back onto its base."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ftlang.plan import Plan


def artifact_name(plan: Plan) -> str:
    """`model` for full fine-tuning, `adapter` for every parameter-efficient method."""
    return "model" if plan.method.kind == "full" else "adapter"


def _swap_in(tmp: Path, final: Path) -> None:
    """Rename a finished temp dir into place; an older result is moved aside first, then removed."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def save_trained(plan: Plan, model: Any, tokenizer: Any, run_dir: str | Path) -> Path:
    """Write run_dir/adapter/ (or model/) via a temp dir + rename; returns the final path."""
    from ftlang.backend import adapters

    final = Path(run_dir) / artifact_name(plan)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    for stale in final.parent.glob(f".{final.name}.tmp-*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    if plan.method.kind == "adapter":
        adapters.save_adapter(model, tmp)
    else:
        try:
            model.save_pretrained(str(tmp), safe_serialization=True)
        except Exception:  # noqa: BLE001 - GGUF-loaded models refuse save_pretrained (DESIGN.md)
            if plan.method.kind != "full":
                raise
            _resave_fresh(model, tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    _swap_in(tmp, final)
    return final


def _resave_fresh(model: Any, out: Path) -> None:
    """A fresh model from the config with the trained state dict loaded: saveable where a GGUF one isn't."""
    fresh = type(model)(model.config)
    fresh.load_state_dict(model.state_dict())
    fresh.save_pretrained(str(out), safe_serialization=True)


def load_trained(plan: Plan, path: str | Path) -> Any:
    """The trained model from an adapter/ or model/ folder, on a fresh base loaded per the plan."""
    from ftlang.backend import adapters
    from ftlang.backend.load import load_model
    from ftlang.backend.methods import quantization_config, quantized_device_map

    path = Path(path)
    if plan.method.kind == "full":
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        auto = AutoModelForSequenceClassification if plan.model.task.kind == "classify" else AutoModelForCausalLM
        return auto.from_pretrained(str(path))
    base = load_model(plan, quantization_config=quantization_config(plan), device_map=quantized_device_map(plan))
    if plan.method.kind == "qlora":
        from peft import prepare_model_for_kbit_training

        from ftlang.backend.methods import keep_one_cpu_4bit_path

        keep_one_cpu_4bit_path(base)
        # the same fp32 casting of the non-quantized layers as in training, so logits match
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    if plan.method.kind == "adapter":
        return adapters.load_adapter(base, path)
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(path))
