"""The ONE place a plan method becomes PEFT / bitsandbytes configuration.

full → the model as loaded; lora/qlora → LoraConfig (+ BitsAndBytesConfig and
prepare_model_for_kbit_training); prefix → PrefixTuningConfig; prompt → PromptTuningConfig (TEXT init);
ia3 → IA3Config; adapter → ftlang's own bottleneck adapters (backend/adapters.py).
"""

from __future__ import annotations

from typing import Any

from ftlang.backend.libs import OPTIMIZERS, bnb_kwargs, optimizer_name, peft_kwargs, quantized, task_type
from ftlang.backend.load import load_model
from ftlang.plan import Plan

__all__ = ["OPTIMIZERS", "apply_method", "load_for_training", "optimizer_name", "peft_config", "quantization_config",
           "quantized", "task_type"]


def quantization_config(plan: Plan) -> Any:
    """A BitsAndBytesConfig for qlora (4-bit) or lora with load_in_8bit, else None (libs.bnb_kwargs)."""
    kwargs = bnb_kwargs(plan)
    if kwargs is None:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    dtypes = {k: getattr(torch, v) for k, v in kwargs.items() if k in ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage")}
    return BitsAndBytesConfig(**(kwargs | dtypes))


def peft_config(plan: Plan) -> Any:
    """The PEFT config of the plan's method (libs.peft_kwargs), or None for full fine-tuning and ftlang adapters."""
    import peft

    spec = peft_kwargs(plan)
    if spec is None:
        return None
    name, kwargs = spec
    if "prompt_tuning_init" in kwargs:
        kwargs["prompt_tuning_init"] = peft.PromptTuningInit(kwargs["prompt_tuning_init"])
    return getattr(peft, name)(**kwargs)


def apply_method(plan: Plan, model: Any) -> Any:
    """Wrap or prepare a loaded base model for the plan's method; returns the model to train."""
    m = plan.method
    if m.kind == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        if plan.train.gradient_checkpointing:
            model.config.use_cache = False
        return model
    if m.kind == "adapter":
        from ftlang.backend.adapters import AdapterConfig, inject_adapters

        return inject_adapters(model, AdapterConfig.from_plan(plan))
    from peft import get_peft_model, prepare_model_for_kbit_training

    if quantized(plan):
        keep_one_cpu_4bit_path(model)
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=plan.train.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": bool(plan.train.reentrant_checkpointing)},
        )
    elif plan.train.gradient_checkpointing:
        # the frozen embeddings give no grad to checkpointed blocks without this
        model.enable_input_require_grads()
    if plan.train.gradient_checkpointing:
        model.config.use_cache = False
    # pure bf16: the adapter weights stay in bf16 too (PEFT upcasts them to fp32 by default)
    model = get_peft_model(model, peft_config(plan), autocast_adapter_dtype=not plan.train.pure_bf16)
    if quantized(plan) and plan.train.pure_bf16:
        _undo_fp32_upcast(model)
    return model


def _undo_fp32_upcast(model: Any) -> None:
    """pure_bf16 over a quantized base: prepare_model_for_kbit_training upcast every parameter but the
    quantized ones to fp32 (norms, embeddings, head) and PEFT creates the adapters of a 4-bit layer in
    fp32; put them in bf16, as the key promises, FSDP needs (one dtype per flat parameter, PEFT's
    FSDP+QLoRA guide) and the estimator counts them (2 bytes)."""
    import torch

    for p in model.parameters():
        if p.dtype == torch.float32 and type(p).__name__ != "Params4bit":
            p.data = p.data.to(torch.bfloat16)


def keep_one_cpu_4bit_path(model: Any) -> None:
    """Turn off bitsandbytes' CPU inference repacking of 4-bit weights.

    On AVX512-BF16 CPUs, Linear4bit repacks its weight on the first eval-mode forward and unpacks
    it again in `state_dict()`, re-quantizing the nested absmax lossily: after an evaluation plus a
    checkpoint the base weights have drifted, eval logits differ from training-mode ones, and neither
    a resume nor a reload reproduces the run. One kernel path keeps them identical.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def quantized_device_map(plan: Plan) -> Any:
    """Where 4-bit weights live: the Trainer never moves a quantized model, so place it on this rank's GPU."""
    if not quantized(plan) or plan.hardware.device == "cpu":
        return None
    import os

    import torch

    if not torch.cuda.is_available():
        return None
    return {"": f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"}


def load_for_training(plan: Plan) -> Any:
    """Base model loaded (quantized for qlora) and wrapped for the plan's method."""
    base = load_model(plan, quantization_config=quantization_config(plan), device_map=quantized_device_map(plan))
    return apply_method(plan, base)


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts of the model as it will train."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        # 4-bit weights are packed two per byte
        if p.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
