"""Per-block key tables: what each key of each block means, its type, unit, range and default.

The tables drive the type checker (semantic/values.py) and are introspectable for docs:
`BLOCKS` is a list of BlockSchema, `block(name)` finds one. Method blocks are named
`method.<kind>`; nested blocks by their keyword (quant, fields, early_stop, generation, register).

Types: int, number (int or float), fraction (a percentage or a number in [0, 1]), bool, str,
size (24GB or bytes), enum, enum_list, ident_list (module names / aliases), steps_or_ratio
(warmup: 3% → ratio, 100 → steps), every (epoch | end | steps), name (an identifier), and `special` for values the
builder interprets itself (sources, task, init, on_error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KeySchema:
    name: str
    type: str
    doc: str
    default: Any = None
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # min is exclusive
    max_open: bool = False  # max is exclusive
    enum: tuple[str, ...] = ()
    required: bool = False

    def range_text(self) -> str:
        if self.min is None and self.max is None:
            return ""
        lo = "" if self.min is None else f"{self.min:g} {'<' if self.min_open else '≤'} "
        hi = "" if self.max is None else f" {'<' if self.max_open else '≤'} {self.max:g}"
        return f"{lo}{self.name}{hi}"


@dataclass(frozen=True)
class BlockSchema:
    name: str
    doc: str
    keys: tuple[KeySchema, ...] = ()
    blocks: tuple[str, ...] = ()  # nested blocks allowed inside
    statements: tuple[str, ...] = ()  # gate, forgetting, data, dataset, alias
    label: str = "none"  # none | ident | str: what may follow the keyword
    _index: dict[str, KeySchema] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({k.name: k for k in self.keys})

    def key(self, name: str) -> KeySchema | None:
        return self._index.get(name)

    @property
    def key_names(self) -> list[str]:
        return [k.name for k in self.keys]


def K(name: str, type: str, doc: str, **kw) -> KeySchema:  # noqa: N802 - a table-building shorthand
    return KeySchema(name, type, doc, **kw)


METRICS = ("loss", "perplexity", "bleu", "rouge_1", "rouge_2", "rouge_l", "exact_match", "accuracy", "f1")
METHOD_KINDS = ("full", "lora", "qlora", "prefix", "prompt", "adapter", "ia3")
FORMATS = ("instruction", "chat", "completion", "classification")
CANONICAL_FIELDS = ("instruction", "input", "output", "system", "messages", "conversations", "text", "label")

_LORA_KEYS = (
    K("r", "int", "the rank of the update matrices", default=8, min=1),
    K("alpha", "number", "the scaling numerator: updates are scaled by alpha / r (default: 2·r)", min=1),
    K("dropout", "fraction", "dropout on the adapter input", default=0.0, min=0, max=1, max_open=True),
    K("targets", "ident_list", "module names or card aliases to adapt (default: the card's all_linear)"),
    K("dora", "bool", "weight-decomposed LoRA (DoRA)", default=False),
    K("rslora", "bool", "rank-stabilised scaling alpha / sqrt(r)", default=False),
    K("bias", "enum", "which biases train", default="none", enum=("none", "all", "lora_only")),
)

BLOCKS: list[BlockSchema] = [
    BlockSchema("recipe", "a fine-tuning recipe", keys=(
        K("model", "special", "a model card name, or hf(\"org/name\", revision = \"...\"), local(\"dir\"), "
          "gguf(\"file.gguf\")", required=True),
        K("task", "special", "causal_lm (default) or classify(labels = [a, b, ...])", default="causal_lm"),
        K("trust_remote_code", "bool", "run the model repository's own Python code when loading", default=False),
    ), blocks=("split", "method", "train", "hardware", "eval", "export"), statements=("data", "dataset")),
    BlockSchema("data", "options of a data source", keys=(
        K("format", "enum", "how rows are shaped", enum=FORMATS, default="instruction"),
        K("on_error", "special", "fail (default) | skip(max = N | N%): skipped rows go to a quarantine file",
          default="fail"),
        K("max_row_chars", "int", "rows longer than this are a validation error", min=1, unit="characters"),
    ), blocks=("fields",)),
    BlockSchema("fields", "canonical field = column name in the file", keys=tuple(
        K(f, "str", f"the column holding the row's {f}") for f in CANONICAL_FIELDS)),
    BlockSchema("split", "hold out part of a dataset for validation", keys=(
        K("validation", "fraction", "the fraction held out", required=True, min=0, max=1, min_open=True,
          max_open=True),
        K("seed", "int", "shuffle seed of the split", default=0, min=0),
    ), label="ident"),
    BlockSchema("method.full", "train every parameter"),
    BlockSchema("method.lora", "low-rank adaptation (PEFT LoRA)", keys=_LORA_KEYS),
    BlockSchema("method.qlora", "LoRA over a 4-bit quantized base (bitsandbytes)", keys=(
        K("r", "int", "the rank of the update matrices", default=16, min=1),
        K("alpha", "number", "the scaling numerator: updates are scaled by alpha / r (default: 2·r)", min=1),
        K("dropout", "fraction", "dropout on the adapter input", default=0.05, min=0, max=1, max_open=True),
        *_LORA_KEYS[3:],
    ), blocks=("quant",)),
    BlockSchema("quant", "base-model quantization", keys=(
        K("type", "enum", "quant type: qlora needs nf4 or fp4", default="nf4", enum=("nf4", "fp4", "int8", "int4")),
        K("double_quant", "bool", "quantize the quantization constants too", default=True),
        K("compute_dtype", "enum", "dtype of the matmuls", default="bf16", enum=("bf16", "fp16", "fp32")),
    )),
    BlockSchema("method.prefix", "prefix tuning (PEFT)", keys=(
        K("virtual_tokens", "int", "virtual tokens prepended to every layer's keys and values", default=20, min=1),
        K("projection", "bool", "reparameterise the prefix through an MLP", default=False),
    )),
    BlockSchema("method.prompt", "prompt tuning (PEFT)", keys=(
        K("virtual_tokens", "int", "soft prompt length", default=8, min=1),
        K("init", "special", "random (default) or text(\"...\"): initialise from a text's embeddings"),
    )),
    BlockSchema("method.adapter", "bottleneck adapter layers", keys=(
        K("bottleneck", "int", "adapter hidden size", default=64, min=1),
        K("placement", "enum_list", "after which sublayers", default=["attention", "ffn"], enum=("attention", "ffn")),
        K("dropout", "fraction", "dropout inside the adapter", default=0.0, min=0, max=1, max_open=True),
        K("activation", "enum", "adapter non-linearity", default="relu", enum=("relu", "gelu", "silu")),
    )),
    BlockSchema("method.ia3", "IA3: learned rescaling vectors (PEFT)", keys=(
        K("targets", "ident_list", "module names or aliases to rescale"),
        K("feedforward", "ident_list", "targets on the feed-forward path (scaled on their input)", default=[]),
    )),
    BlockSchema("train", "optimisation", keys=(
        K("lr", "number", "peak learning rate", default=2e-4, min=0, min_open=True),
        K("epochs", "number", "passes over the training set", default=1.0, min=0, min_open=True),
        K("max_steps", "int", "stop after this many optimizer steps (instead of epochs)", min=1),
        K("batch", "int", "examples per device per step", default=1, min=1),
        K("grad_accum", "int", "micro-batches accumulated per optimizer step", default=1, min=1),
        K("warmup", "steps_or_ratio", "warmup: 3% of the steps, or 100 steps", min=0),
        K("schedule", "enum", "learning-rate schedule", default="linear",
          enum=("linear", "cosine", "constant", "constant_with_warmup", "polynomial")),
        K("precision", "enum", "training dtype", default="fp32", enum=("bf16", "fp16", "fp32")),
        K("weight_decay", "number", "AdamW weight decay", default=0.0, min=0),
        K("max_grad_norm", "number", "gradient clipping norm", default=1.0, min=0),
        K("dropout", "fraction", "the base model's hidden dropout", min=0, max=1, max_open=True),
        K("max_seq_len", "int", "tokens per example (longer rows are truncated)", default=1024, min=1,
          unit="tokens"),
        K("packing", "bool", "pack several short examples into one sequence", default=False),
        K("gradient_checkpointing", "bool", "recompute activations in the backward pass", default=False),
        K("seed", "int", "random seed", default=0, min=0),
        K("deterministic", "bool", "deterministic kernels", default=False),
        K("optimizer", "enum", "optimizer", default="adamw",
          enum=("adamw", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd", "adafactor")),
        K("logging_steps", "int", "log every N steps", default=10, min=1),
        K("save_steps", "int", "checkpoint every N steps (default: each epoch)", min=1),
        K("save_total_limit", "int", "checkpoints kept", default=2, min=1),
        K("template", "str", "chat template: a stdlib name (default: the card's, else the tokenizer's)"),
        K("train_on", "enum", "which tokens carry the loss", default="assistant", enum=("assistant", "all")),
    ), blocks=("early_stop",)),
    BlockSchema("early_stop", "stop when a validation metric stops improving", keys=(
        K("metric", "name", "val_loss or a computed metric", default="val_loss"),
        K("patience", "int", "evaluations without improvement", default=2, min=1),
        K("min_delta", "number", "smallest change that counts as improvement", default=0.0, min=0),
    )),
    BlockSchema("hardware", "where training runs (for the memory check and the launcher)", keys=(
        K("gpu", "str", "a hardware catalog name, e.g. \"A100-40GB\""),
        K("memory", "size", "memory per device (overrides the catalog)", unit="bytes", min=1),
        K("count", "int", "devices per node", default=1, min=1),
        K("nodes", "int", "machines", default=1, min=1),
        K("strategy", "enum", "multi-device strategy", default="none", enum=("none", "ddp", "fsdp", "deepspeed")),
        K("device", "enum", "device type", default="auto", enum=("auto", "cpu", "cuda")),
    )),
    BlockSchema("eval", "evaluation and gates", keys=(
        K("every", "every", "epoch | end | N steps", default="epoch"),
        K("metrics", "enum_list", "metrics computed on the validation set", default=["loss", "perplexity"],
          enum=METRICS),
        K("overfitting_patience", "int", "evaluations of rising val loss that count as overfitting", default=2,
          min=1),
        K("max_samples", "int", "cap on rows used for generation metrics", min=1),
    ), blocks=("generation",), statements=("gate", "forgetting")),
    BlockSchema("generation", "decoding for generation metrics", keys=(
        K("max_new_tokens", "int", "tokens generated per example", default=64, min=1),
        K("greedy", "bool", "greedy decoding", default=True),
        K("temperature", "number", "sampling temperature", default=1.0, min=0, min_open=True),
        K("top_p", "number", "nucleus sampling mass", default=1.0, min=0, max=1, min_open=True),
    )),
    BlockSchema("export", "what to do with the result", keys=(
        K("merge", "bool", "merge the adapter into the base weights (lora, qlora, ia3)", default=False),
    ), blocks=("register",)),
    BlockSchema("register", "publish to a local registry after the gates pass", keys=(
        K("registry", "str", "the registry directory, relative to the recipe", default="registry/"),
        K("stage", "enum", "registry stage", default="staging", enum=("staging", "production", "archived")),
    ), label="str"),
    BlockSchema("model_card", "a base model's dimensions", keys=(
        K("source", "special", "hf(\"org/name\"), local(\"dir\"), gguf(...) or local_package(\"pkg\", \"dir\")",
          required=True),
        K("family", "enum", "architecture family", required=True,
          enum=("llama", "mistral", "qwen2", "gemma2", "phi3", "gpt2", "bert")),
        K("arch", "enum", "decoder or encoder", default="decoder", enum=("decoder", "encoder")),
        K("hidden", "int", "hidden_size", required=True, min=1),
        K("layers", "int", "num_hidden_layers", required=True, min=1),
        K("heads", "int", "num_attention_heads", required=True, min=1),
        K("kv_heads", "int", "num_key_value_heads (default: heads)", min=1),
        K("head_dim", "int", "head_dim when not hidden / heads", min=1),
        K("intermediate", "int", "intermediate_size", required=True, min=1),
        K("vocab", "int", "vocab_size", required=True, min=1),
        K("max_position", "int", "max_position_embeddings", min=1),
        K("tie_embeddings", "bool", "tie_word_embeddings", default=False),
        K("qkv_bias", "bool", "q/k/v projections have a bias", default=False),
        K("modules", "ident_list", "linear module leaf names", required=True),
        K("template", "str", "chat template name (stdlib/templates/<name>.jinja)"),
    ), statements=("alias",)),
]

_BY_NAME = {b.name: b for b in BLOCKS}


def block(name: str) -> BlockSchema | None:
    return _BY_NAME.get(name)


def method_block(kind: str) -> BlockSchema | None:
    return _BY_NAME.get(f"method.{kind}")


def all_keys() -> list[tuple[str, KeySchema]]:
    """(block name, key) for every key: the docs generator walks this."""
    return [(b.name, k) for b in BLOCKS for k in b.keys]


def markdown() -> str:
    """The key tables as Markdown (docs/language.md embeds this; `ftlang schema --keys --markdown`)."""
    out = []
    for b in BLOCKS:
        out.append(f"### `{b.name}`\n\n{b.doc}.")
        if b.blocks:
            out.append("Nested blocks: " + ", ".join(f"`{n}`" for n in b.blocks) + ".")
        if b.keys:
            rows = ["| key | type | default | range / choices | meaning |", "|---|---|---|---|---|"]
            for k in b.keys:
                choices = " \\| ".join(k.enum) if k.enum else k.range_text()
                default = "required" if k.required else ("" if k.default is None else f"`{_text(k.default)}`")
                unit = f" ({k.unit})" if k.unit else ""
                doc = k.doc.replace("|", "\\|")
                rows.append(f"| `{k.name}` | {k.type}{unit} | {default} | {choices} | {doc} |")
            out.append("\n".join(rows))
    return "\n\n".join(out) + "\n"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)
