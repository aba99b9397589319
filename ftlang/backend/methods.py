"""The ONE place a plan method becomes PEFT / bitsandbytes configuration.

full → the model as loaded; lora/qlora → LoraConfig (+ BitsAndBytesConfig and
prepare_model_for_kbit_training); prefix → PrefixTuningConfig; prompt → PromptTuningConfig (TEXT init);
ia3 → IA3Config; adapter → ftlang's own bottleneck adapters (backend/adapters.py).
"""

from __future__ import annotations

from typing import Any

from ftlang.backend.load import ModelLocation, load_model, model_location
from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan
from ftlang.source import loc_span

#: plan optimizer → transformers `optim` name
OPTIMIZERS = {
    "adamw": "adamw_torch_fused",  # transformers 5's default: one fused kernel per step
    "adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "paged_adamw_32bit": "paged_adamw_32bit",
    "sgd": "sgd",
    "adafactor": "adafactor",
}


def task_type(plan: Plan) -> str:
    return "SEQ_CLS" if plan.model.task.kind == "classify" else "CAUSAL_LM"


def quantized(plan: Plan) -> bool:
    """The base loads quantized (qlora, or lora with load_in_8bit)."""
    return plan.method.kind == "qlora" or bool(getattr(plan.method, "load_in_8bit", None))


def quant_storage(plan: Plan) -> str:
    """The dtype 4-bit weights are stored in: `quant { storage }`, else the compute dtype under fsdp (so FSDP
    can shard them: PEFT's FSDP+QLoRA guide), else uint8."""
    q = plan.method.quant
    return q.storage or (q.compute_dtype if plan.hardware.strategy == "fsdp" else "uint8")


def quantization_config(plan: Plan) -> Any:
    """A BitsAndBytesConfig for qlora (4-bit) or lora with load_in_8bit, else None."""
    if not quantized(plan):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if plan.method.kind == "lora":
        return BitsAndBytesConfig(load_in_8bit=True)
    q = plan.method.quant
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "uint8": torch.uint8}
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=dtypes[q.compute_dtype],
        bnb_4bit_quant_storage=dtypes[quant_storage(plan)],
    )


def _prompt_tokenizer_source(where: ModelLocation) -> tuple[str, dict]:
    kwargs = {k: v for k, v in where.kwargs.items() if k in ("gguf_file", "revision", "trust_remote_code")}
    return where.path, kwargs


def peft_config(plan: Plan) -> Any:
    """The PEFT config of the plan's method, or None for full fine-tuning and ftlang adapters."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, PromptTuningInit

    m = plan.method
    tt = task_type(plan)
    if m.kind in ("lora", "qlora"):
        return LoraConfig(
            task_type=tt, r=m.r, lora_alpha=m.alpha, lora_dropout=m.dropout, target_modules=list(m.targets),
            use_dora=m.dora, use_rslora=m.rslora, bias=m.bias,
            modules_to_save=list(m.modules_to_save) if m.modules_to_save else None,
        )
    if m.kind == "prefix":
        return PrefixTuningConfig(task_type=tt, num_virtual_tokens=m.virtual_tokens, prefix_projection=m.projection)
    if m.kind == "prompt":
        if m.init_text:
            path, kwargs = _prompt_tokenizer_source(model_location(plan))
            return PromptTuningConfig(
                task_type=tt, num_virtual_tokens=m.virtual_tokens, prompt_tuning_init=PromptTuningInit.TEXT,
                prompt_tuning_init_text=m.init_text, tokenizer_name_or_path=path, tokenizer_kwargs=kwargs or None,
            )
        return PromptTuningConfig(task_type=tt, num_virtual_tokens=m.virtual_tokens,
                                  prompt_tuning_init=PromptTuningInit.RANDOM)
    if m.kind == "ia3":
        missing = [f for f in m.feedforward if f not in m.targets]
        if missing:
            raise DiagnosticError(error(
                "FT306", f"ia3 feedforward modules {missing} are not among its targets", loc_span(m.loc),
                help="every feedforward module must also be listed in targets",
            ))
        return IA3Config(task_type=tt, target_modules=list(m.targets), feedforward_modules=list(m.feedforward))
    return None


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
    return get_peft_model(model, peft_config(plan), autocast_adapter_dtype=not plan.train.pure_bf16)


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


def optimizer_name(plan: Plan, device: str) -> str:
    """The transformers `optim` for the plan, refusing CUDA-only optimizers elsewhere."""
    opt = plan.train.optimizer
    if opt.startswith("paged_") and device != "cuda":
        raise DiagnosticError(error(
            "FT703", f"optimizer {opt} needs a CUDA GPU (paged memory); this run is on {device}",
            loc_span(plan.train.loc),
            help="use optimizer = adamw on this machine, or run on a CUDA GPU",
        ))
    if opt == "adamw_8bit" and device != "cuda":
        raise DiagnosticError(error(
            "FT703", f"optimizer {opt} (bitsandbytes 8-bit Adam) needs a CUDA GPU; this run is on {device}",
            loc_span(plan.train.loc), help="use optimizer = adamw on this machine",
        ))
    return OPTIMIZERS[opt]


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
