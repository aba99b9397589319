"""The plan as library keyword arguments: the ONE torch-free mapping onto TrainingArguments, the PEFT
config, BitsAndBytesConfig (and, in launch.py, the accelerate config).

backend/train.py and backend/methods.py build the library objects from these dicts; `ftlang plan --libs`
prints them without importing torch, so what the plan says and what a run builds cannot drift
(tests/test_recipe_features.py compares them). Dtypes are names here ("bfloat16"); the builders turn
them into torch dtypes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ftlang.backend.load import model_location
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


def steps_per_epoch(plan: Plan, train_rows: int, world: int = 1) -> int:
    """Optimizer steps in one epoch, as the Trainer counts them (the last partial accumulation counts)."""
    batches = math.ceil(train_rows / (plan.train.batch * world))
    return max(1, math.ceil(batches / plan.train.grad_accum))


def _eval_strategy(plan: Plan, has_validation: bool, train_rows: int | None = None) -> tuple[str, int | float | None]:
    every = plan.eval.every
    if not has_validation:
        return "no", None
    if isinstance(every, int):
        return "steps", every
    if isinstance(every, float):  # a fraction of an epoch
        if train_rows is not None:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            return "steps", max(1, round(every * steps_per_epoch(plan, train_rows, world)))
        if plan.train.epochs is not None and every / plan.train.epochs < 1:
            return "steps", every / plan.train.epochs  # the Trainer reads a float < 1 as a ratio of all steps
        return "epoch", None
    if every == "end" and plan.train.early_stop is None and plan.eval.select == "final":
        return "no", None  # one evaluation after training instead
    return "epoch", None


def _checkpointing(plan: Plan, best: bool, eval_strategy: str, eval_steps: int | None) -> tuple[str, dict[str, Any]]:
    """(save_strategy, TrainingArguments keys) for checkpoints and the model selection they serve."""
    t = plan.train
    kwargs: dict[str, Any] = {}
    if t.early_stop is not None:
        metric = "eval_loss" if t.early_stop.metric in ("val_loss", "loss") else f"eval_{t.early_stop.metric}"
        kwargs.update(metric_for_best_model=metric, greater_is_better=metric != "eval_loss" and "loss" not in metric)
    save_strategy = "steps" if t.save_steps else "epoch"
    if best:
        # a checkpoint at every evaluation, so the best one exists; the Trainer reloads it at the end
        kwargs.update(metric_for_best_model="eval_loss", greater_is_better=False, load_best_model_at_end=True)
        save_strategy = eval_strategy
        if eval_strategy == "steps":
            kwargs["save_steps"] = eval_steps
    elif eval_strategy == "steps" and t.early_stop is not None and not t.save_steps:
        save_strategy = "steps"
        kwargs["save_steps"] = eval_steps
    elif t.save_steps:
        kwargs["save_steps"] = t.save_steps
    return save_strategy, kwargs


def training_kwargs(plan: Plan, output_dir: str | Path, *, device: str, has_validation: bool,
                    tty: bool = False, train_rows: int | None = None) -> dict[str, Any]:
    """The keyword arguments of TrainingArguments for the plan: the one mapping of TrainPlan keys onto the
    Trainer (backend/train.py builds the object from it; `ftlang plan --libs` prints it).

    train_rows: the training rows (after packing), for `eval { every = 0.25 }` (a fraction of an epoch)."""
    t = plan.train
    best = plan.eval.select != "final"
    if (t.early_stop is not None or best) and not has_validation:
        what, where = ("early_stop", t.loc) if t.early_stop is not None else ("select = best(val_loss)", plan.eval.loc)
        raise DiagnosticError(error(
            "FT706", f"{what} needs a validation set, and this recipe has none", loc_span(where),
            help="add `split train { validation = 5% }` or a `dataset validation = ...`",
        ))
    eval_strategy, eval_steps = _eval_strategy(plan, has_validation, train_rows)
    warmup: float | int = 0
    if t.warmup_ratio is not None:
        warmup = float(t.warmup_ratio)  # transformers 5: a float in [0, 1) is a ratio
    elif t.warmup_steps is not None:
        warmup = int(t.warmup_steps)
    save_strategy, kwargs = _checkpointing(plan, best, eval_strategy, eval_steps)
    if device == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        kwargs["ddp_backend"] = "gloo"
    return dict(
        output_dir=str(output_dir),
        learning_rate=t.lr,
        num_train_epochs=t.epochs if t.epochs is not None else 1.0,
        max_steps=t.max_steps if t.max_steps is not None else -1,
        per_device_train_batch_size=t.batch,
        per_device_eval_batch_size=plan.eval.batch or t.batch,
        gradient_accumulation_steps=t.grad_accum,
        warmup_steps=warmup,
        lr_scheduler_type=t.schedule,
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        activation_checkpointing=t.gradient_checkpointing and not quantized(plan),  # kbit prep did it
        activation_checkpointing_kwargs={"use_reentrant": bool(t.reentrant_checkpointing)}
        if t.gradient_checkpointing else None,
        torch_compile=bool(t.compile),
        seed=t.seed,
        data_seed=t.seed,
        full_determinism=t.deterministic,
        optim=optimizer_name(plan, device),
        # unset: every step of a short run, about 200 points of a long one (a float < 1 is a ratio)
        logging_steps=t.logging_steps if t.logging_steps is not None else 1 / 200,
        logging_first_step=False,
        eval_strategy=eval_strategy,
        eval_steps=eval_steps,
        save_strategy=save_strategy,
        save_total_limit=None,  # rotation is ours: only after a newer checkpoint is complete
        prediction_loss_only=True,
        label_names=["labels"],
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=not tty,
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
        save_only_model=False,
        **kwargs,
    )


_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "uint8": "uint8"}


def bnb_kwargs(plan: Plan) -> dict[str, Any] | None:
    """BitsAndBytesConfig keyword arguments for qlora (4-bit) or lora with load_in_8bit, else None."""
    if not quantized(plan):
        return None
    if plan.method.kind == "lora":
        return {"load_in_8bit": True}
    q = plan.method.quant
    return {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": q.type,
        "bnb_4bit_use_double_quant": q.double_quant,
        "bnb_4bit_compute_dtype": _DTYPES[q.compute_dtype],
        "bnb_4bit_quant_storage": _DTYPES[quant_storage(plan)],
    }


def _prompt_tokenizer_source(plan: Plan) -> tuple[str, dict]:
    where = model_location(plan)
    kwargs = {k: v for k, v in where.kwargs.items() if k in ("gguf_file", "revision", "trust_remote_code")}
    return where.path, kwargs


def peft_kwargs(plan: Plan) -> tuple[str, dict[str, Any]] | None:
    """(PEFT config class name, its keyword arguments) of the plan's method; None for full fine-tuning and
    ftlang's own bottleneck adapters."""
    m = plan.method
    tt = task_type(plan)
    if m.kind in ("lora", "qlora"):
        return "LoraConfig", dict(
            task_type=tt, r=m.r, lora_alpha=m.alpha, lora_dropout=m.dropout, target_modules=list(m.targets),
            use_dora=m.dora, use_rslora=m.rslora, bias=m.bias,
            modules_to_save=list(m.modules_to_save) if m.modules_to_save else None,
        )
    if m.kind == "prefix":
        return "PrefixTuningConfig", dict(task_type=tt, num_virtual_tokens=m.virtual_tokens,
                                          prefix_projection=m.projection)
    if m.kind == "prompt":
        if m.init_text:
            path, kwargs = _prompt_tokenizer_source(plan)
            return "PromptTuningConfig", dict(
                task_type=tt, num_virtual_tokens=m.virtual_tokens, prompt_tuning_init="TEXT",
                prompt_tuning_init_text=m.init_text, tokenizer_name_or_path=path, tokenizer_kwargs=kwargs or None,
            )
        return "PromptTuningConfig", dict(task_type=tt, num_virtual_tokens=m.virtual_tokens,
                                          prompt_tuning_init="RANDOM")
    if m.kind == "ia3":
        missing = [f for f in m.feedforward if f not in m.targets]
        if missing:
            raise DiagnosticError(error(
                "FT306", f"ia3 feedforward modules {missing} are not among its targets", loc_span(m.loc),
                help="every feedforward module must also be listed in targets",
            ))
        return "IA3Config", dict(task_type=tt, target_modules=list(m.targets), feedforward_modules=list(m.feedforward))
    return None


def library_kwargs(plan: Plan) -> dict[str, Any]:
    """What `ftlang plan --libs` prints: the keyword arguments each library object of a run gets.

    The device is the plan's (`hardware { device }`; auto is taken as a CUDA GPU, where a GPU plan runs),
    the checkpoints go to RUN_DIR/checkpoints, and `eval { every = <fraction> }` is shown as a ratio of all
    steps (a run knows the rows and writes the step count). The accelerate config (launch.py) is added by
    the command."""
    device = "cpu" if plan.hardware.device == "cpu" else "cuda"
    has_validation = "validation" in plan.datasets.pipelines or plan.datasets.split is not None
    peft = peft_kwargs(plan)
    return {
        "TrainingArguments": training_kwargs(plan, "RUN_DIR/checkpoints", device=device,
                                             has_validation=has_validation),
        "peft": None if peft is None else {"class": peft[0], "kwargs": peft[1]},
        "BitsAndBytesConfig": bnb_kwargs(plan),
        "from_pretrained": {"attn_implementation": plan.train.attention} if plan.train.attention else {},
    }
