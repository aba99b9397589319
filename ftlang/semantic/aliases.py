"""What users of other fine-tuning tools write, and ftlang's spelling: the one table of migration aliases.

    lookup(name) -> Alias | None         a key or a value from Axolotl, LLaMA-Factory, torchtune, PEFT,
                                         transformers or TRL
    guess(name, options) -> str | None   ftlang's spelling when it is one of `options` (did_you_mean asks
                                         this first: `num_warmup_steps` is `warmup`, not the closest
                                         spelling `max_steps`, which would change the training length)
    fix(name) -> str | None              how to write it in ftlang, for a help line

An alias either renames (`to`: a key, or a value such as a module name or an enum word) or needs a
rewrite elsewhere in the recipe (`fix`: e.g. `load_in_4bit` is `method qlora`).
"""

from __future__ import annotations

from dataclasses import dataclass

AX, LF, TT, PEFT, HF, TRL = "Axolotl", "LLaMA-Factory", "torchtune", "PEFT", "transformers", "TRL"


@dataclass(frozen=True)
class Alias:
    name: str
    tools: tuple[str, ...]
    to: str | None = None  # ftlang's key or value, when it is a rename
    fix: str | None = None  # otherwise: what to write instead, in ftlang

    def help(self) -> str:
        where = " and ".join(self.tools)
        if self.fix:
            return f"`{self.name}` ({where}) in ftlang: {self.fix}"
        return f"replace `{self.name}` with `{self.to}` (`{self.name}` is {where}'s name for it)"


def _a(name: str, tools: tuple[str, ...] | str, to: str | None = None, fix: str | None = None) -> Alias:
    return Alias(name, (tools,) if isinstance(tools, str) else tools, to, fix)


_SPLIT = "hold out validation data with a recipe-level `split train { validation = 5% }`"
_QLORA = "use `method qlora { r = 16, targets = all_linear }`: QLoRA loads the base model in 4-bit (nf4)"

ALIASES: tuple[Alias, ...] = (
    # ---- train
    _a("learning_rate", (HF, AX, LF), "lr"),
    _a("num_epochs", (AX,), "epochs"),
    _a("num_train_epochs", (HF, LF), "epochs"),
    _a("batch_size", (TT,), "batch"),
    _a("micro_batch_size", (AX,), "batch"),
    _a("per_device_train_batch_size", (HF, LF), "batch"),
    _a("gradient_accumulation_steps", (HF, AX, LF, TT), "grad_accum"),
    _a("warmup_ratio", (HF, AX, LF), "warmup"),
    _a("warmup_steps", (HF, AX, LF), "warmup"),
    _a("num_warmup_steps", (TT,), "warmup"),
    _a("lr_scheduler_type", (HF, LF), "schedule"),
    _a("lr_scheduler", (AX,), "schedule"),
    _a("sequence_len", (AX,), "max_seq_len"),
    _a("cutoff_len", (LF,), "max_seq_len"),
    _a("max_length", (HF,), "max_seq_len"),
    _a("max_seq_length", (TRL,), "max_seq_len"),
    _a("sample_packing", (AX,), "packing"),
    _a("eval_sample_packing", (AX,), "eval.packing", "`eval { packing = true }`"),
    _a("optim", (HF, LF), "optimizer"),
    _a("bf16", (HF, AX, LF), "precision", "`precision = bf16` in the train block"),
    _a("fp16", (HF, AX, LF), "precision", "`precision = fp16` in the train block"),
    _a("val_set_size", (AX,), fix=_SPLIT),
    _a("val_size", (LF,), fix=_SPLIT),
    # ---- method
    _a("lora_r", (AX,), "r"),
    _a("lora_rank", (LF, TT), "r"),
    _a("rank", (TT,), "r"),
    _a("lora_alpha", (PEFT, AX, LF, TT), "alpha"),
    _a("lora_dropout", (PEFT, AX, LF, TT), "dropout"),
    _a("target_modules", (PEFT,), "targets"),
    _a("lora_target_modules", (AX,), "targets"),
    _a("lora_target", (LF,), "targets"),
    _a("lora_attn_modules", (TT,), "targets"),
    _a("lora_target_linear", (AX,), "targets", "`targets = all_linear` (the default when `targets` is left out)"),
    _a("use_dora", (PEFT, LF), "dora"),
    _a("use_rslora", (PEFT, LF), "rslora"),
    _a("num_virtual_tokens", (PEFT,), "virtual_tokens"),
    _a("load_in_4bit", (HF, AX), fix=_QLORA),
    _a("quantization_bit", (LF,), fix=_QLORA + " (8-bit base models are not supported)"),
    _a("bnb_4bit_quant_type", (HF,), "type"),
    _a("quant_type", (HF,), "type"),
    _a("bnb_4bit_use_double_quant", (HF,), "double_quant"),
    _a("bnb_4bit_compute_dtype", (HF,), "compute_dtype"),
    # ---- values: target modules and enum words
    _a("all-linear", (PEFT, TRL), "all_linear"),
    _a("all", (LF,), "all_linear"),
    _a("output_proj", (TT,), "o_proj"),
    _a("w1", (TT,), "gate_proj"),
    _a("w2", (TT,), "down_proj"),
    _a("w3", (TT,), "up_proj"),
    _a("bfloat16", (HF, TT), "bf16"),
    _a("float16", (HF, TT), "fp16"),
    _a("float32", (HF, TT), "fp32"),
    _a("adamw_torch", (HF, AX, LF), "adamw"),
    _a("adamw_torch_fused", (HF, AX, LF), "adamw"),  # ftlang's adamw is the fused kernel
    # ---- more names `ftlang import` maps (keys, then values)
    _a("clip_grad_norm", (TT,), "max_grad_norm"),
    _a("enable_activation_checkpointing", (TT,), "gradient_checkpointing"),
    _a("dtype", (TT,), "precision"),
    _a("log_every_n_steps", (TT,), "logging_steps"),
    _a("preprocessing_num_workers", (HF, LF), "data_workers"),
    _a("dataset_processes", (AX,), "data_workers"),
    _a("early_stopping_patience", (HF, AX), "patience"),
    _a("eval_steps", (HF, AX, LF), "every"),
    _a("run_val_every_n_steps", (TT,), "every"),
    _a("chat_template", (AX,), "template"),
    _a("adamw_bnb_8bit", (AX,), "adamw_8bit"),
    _a("torch.optim.AdamW", (TT,), "adamw"),
    _a("torch.optim.SGD", (TT,), "sgd"),
    _a("bitsandbytes.optim.PagedAdamW8bit", (TT,), "paged_adamw_8bit"),
    _a("bitsandbytes.optim.PagedAdamW", (TT,), "paged_adamw_32bit"),
    _a("bitsandbytes.optim.AdamW8bit", (TT,), "adamw_8bit"),
    _a("torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup", (TT,), "cosine"),
    _a("torchtune.modules.get_cosine_schedule_with_warmup", (TT,), "cosine"),
    _a("qwen", (LF,), "chatml"),
    # ---- settings ftlang decides itself or cannot express: `fix` says why (`ftlang import` comments them)
    _a("output_dir", (HF, AX, LF, TT), fix="a run writes to runs/<recipe>/<plan hash>-<time>/ (`ftlang run --out DIR`)"),
    _a("resume_from_checkpoint", (HF, AX, LF, TT), fix="resume with `ftlang run --resume`"),
    _a("report_to", (HF, LF), fix="metrics go to the run folder and `ftlang report`; no tracker integration"),
    _a("dataset_prepared_path", (AX,), fix="prepared data is cached by content hash; nothing to set"),
    _a("tokenized_path", (LF,), fix="prepared data is cached by content hash; nothing to set"),
    _a("overwrite_cache", (LF,), fix="prepared data is cached by content hash; nothing to set"),
    _a("flash_attention", (AX,), "attention", "`train { attention = flash_attention_2 }`"),
    _a("sdp_attention", (AX,), "attention", "`train { attention = sdpa }`"),
    _a("eager_attention", (AX,), "attention", "`train { attention = eager }`"),
    _a("flash_attn", (LF,), "attention"),
    _a("attn_implementation", (HF, AX), "attention"),
    _a("fa2", (LF,), "flash_attention_2"),
    _a("disabled", (LF,), "eager"),
    _a("per_device_eval_batch_size", (HF, LF), "eval.batch", "`eval { batch = N }`"),
    _a("eval_batch_size", (AX,), "eval.batch", "`eval { batch = N }`"),
    _a("special_tokens", (AX,), fix="`train { pad_token = \"…\" }`; bos/eos/unk are the tokenizer's own"),
    _a("tokens", (AX,), "add_tokens"),
    _a("torch_compile", (HF, AX), "compile"),
    _a("use_reentrant", (HF, AX), "reentrant_checkpointing"),
    _a("bnb_4bit_quant_storage", (HF, AX), "storage"),
    _a("lora_modules_to_save", (AX,), "modules_to_save"),
    _a("additional_target", (LF,), "modules_to_save"),
    _a("push_to_hub", (HF, LF), fix="with `hub_model_id`: `export { push = \"org/name\" }`"),
    _a("hub_model_id", (HF, AX, LF), "push", "`export { push = \"org/name\" }`"),
    _a("max_samples", (LF,), fix="`dataset train = d | head(N)` keeps the first N rows"),
    _a("evals_per_epoch", (AX,), "every", "`eval { every = 1/N }`: a fraction of an epoch (0.25: four times)"),
    _a("ddp_timeout", (HF, LF), fix="the launcher's defaults are used"),
    _a("stage", (LF,), fix="ftlang fine-tunes with the supervised (SFT) loss; pre-training, reward-model, PPO and "
                          "DPO/KTO stages are not expressible"),
    _a("pref_beta", (LF,), fix="preference training (DPO/ORPO) is not expressible"),
    _a("pref_loss", (LF,), fix="preference training (DPO/ORPO) is not expressible"),
    _a("model_type", (AX,), fix="ftlang loads the model's own class from its config"),
    _a("tokenizer_type", (AX,), fix="ftlang loads the model's own tokenizer"),
    _a("saves_per_epoch", (AX,), fix="a checkpoint is saved each epoch (default) or every `save_steps`"),
    _a("overwrite_output_dir", (HF, LF), fix="every run writes a new run folder"),
    _a("plot_loss", (LF,), fix="the run report (report.html) charts the loss"),
    _a("log_peak_memory_stats", (TT,), fix="the run report records peak memory"),
    _a("pad_to_sequence_len", (AX,), fix="rows are padded per batch (packing fills sequences: `packing = true`)"),
    _a("checkpointer", (TT,), fix="`model` names the weights; a run writes its own checkpoints"),
    _a("tokenizer", (TT,), fix="the tokenizer is the model's own"),
    _a("metric_logger", (TT,), fix="metrics go to the run folder and `ftlang report`; no tracker integration"),
    _a("profiler", (TT,), fix="no profiler integration"),
    _a("loss", (TT,), fix="the loss is the model's token cross-entropy"),
)

_BY_NAME: dict[str, Alias] = {a.name: a for a in ALIASES}


def lookup(name: str) -> Alias | None:
    return _BY_NAME.get(name)


def guess(name: str, options) -> str | None:
    """ftlang's spelling of a foreign `name` when it is one of `options` (keys, values, modules)."""
    a = _BY_NAME.get(name)
    return a.to if a is not None and a.to is not None and a.to in options else None


def fix(name: str) -> str | None:
    """The help line for a foreign name (None: not a known foreign name)."""
    a = _BY_NAME.get(name)
    return a.help() if a is not None else None
