"""Per-block key tables: what each key of each block means, its type, unit, range and default.

The plan's pydantic models are the declaration (ftlang/plan.py `key(...)` on each Field: default, range,
unit, doc, and the recipe's spelling when it differs); this module reads them into tables that drive the
type checker (semantic/values.py), `ftlang schema --keys`, the docs and editor support. Only blocks with
no plan model of their own (recipe, fields, model_card) are written here.

Public API (stable, for the checker, the docs and the LSP): `BLOCKS` (a list of BlockSchema),
`block(name)`, `method_block(kind)`, `keys(name)`, `all_keys()`, `markdown()`. Method blocks are named
`method.<kind>`; nested blocks by their keyword (quant, fields, early_stop, generation, register).

Types: int, number (int or float), fraction (a percentage or a number in [0, 1]), bool, str,
size (24GB or bytes), enum, enum_list, ident_list (module names / aliases), steps_or_ratio
(warmup: 3% → ratio, 100 → steps), every (epoch | end | steps), name (an identifier), and `special` for values the
builder interprets itself (sources, task, init, on_error).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ftlang import plan as P
from ftlang.semantic.cards import FAMILIES


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
    field: str | None = None  # the plan field it fills (None: no single field, e.g. model, warmup)

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
    model: type[BaseModel] | None = None  # the plan model declaring the keys (None: written here)
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


METRICS = get_args(get_args(P.EvalPlan.model_fields["metrics"].annotation)[0])
METHOD_KINDS = ("full", "lora", "qlora", "prefix", "prompt", "adapter", "ia3")
FORMATS = get_args(P.SourcePlan.model_fields["format"].annotation)
CANONICAL_FIELDS = ("instruction", "input", "output", "system", "messages", "conversations", "text", "label")

#: plan model of each `method KIND { ... }` block
METHOD_MODELS: dict[str, type[BaseModel]] = {
    "full": P.FullMethod, "lora": P.LoraMethod, "qlora": P.QloraMethod, "prefix": P.PrefixMethod,
    "prompt": P.PromptMethod, "adapter": P.AdapterMethod, "ia3": P.Ia3Method,
}


# ---------------------------------------------------------------------------- keys from plan Fields


def field_meta(info: FieldInfo) -> dict[str, Any]:
    """The ftlang part of a plan field's declaration (plan.key / plan.internal)."""
    extra = info.json_schema_extra
    return extra.get("ftlang", {}) if isinstance(extra, dict) else {}


def _unwrap(annotation: Any) -> Any:
    """X | None → X (the checker never accepts a written `none`)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _value_type(annotation: Any) -> tuple[str, tuple[str, ...]]:
    """The checker's type and enum words for a plan annotation."""
    ann = _unwrap(annotation)
    if get_origin(ann) is Literal:
        return "enum", tuple(get_args(ann))
    if get_origin(ann) is list:
        (item,) = get_args(ann)
        if get_origin(item) is Literal:
            return "enum_list", tuple(get_args(item))
        return "ident_list", ()
    simple = {bool: "bool", int: "int", float: "number", str: "str"}
    if ann in simple:
        return simple[ann], ()
    raise TypeError(f"no checker type for {annotation!r}: give it with key(type=...)")


def _bounds(info: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in info.metadata:
        for attr, bound, is_open in (("ge", "min", False), ("gt", "min", True), ("le", "max", False),
                                     ("lt", "max", True)):
            if getattr(m, attr, None) is not None:
                out[bound] = getattr(m, attr)
                out[f"{bound}_open"] = is_open
    return out


def _key_of(fname: str, info: FieldInfo) -> KeySchema:
    meta = field_meta(info)
    typ, enum = _value_type(info.annotation) if "type" not in meta else (meta["type"], ())
    enum = tuple(meta.get("enum", enum))
    if "default" in meta:
        default = meta["default"]
    else:
        default = None if info.is_required() else info.get_default(call_default_factory=True)
    return KeySchema(meta.get("key", fname), typ, info.description or "", default=default, unit=meta.get("unit"),
                     enum=enum, required=bool(meta.get("required")), field=fname, **_bounds(info))


def key_fields(model: type[BaseModel]) -> list[KeySchema]:
    """Every recipe key that a plan model declares, in field order, one KeySchema per plan field (a key
    that fills two fields, warmup, appears twice with its `field`)."""
    out = []
    for fname, info in model.model_fields.items():
        meta = field_meta(info)
        if fname in ("loc", "kind") or meta.get("internal") or "block" in meta:
            continue
        if _is_model(_unwrap(info.annotation)) and "type" not in meta:
            continue  # a nested block
        out.append(_key_of(fname, info))
    return out


def nested_blocks(model: type[BaseModel]) -> dict[str, str]:
    """Nested block keyword → plan field, for the plan model's sub-models (early_stop, quant, register)."""
    out = {}
    for fname, info in model.model_fields.items():
        meta = field_meta(info)
        if "block" in meta or (_is_model(_unwrap(info.annotation)) and "type" not in meta and fname != "loc"):
            out[meta.get("block", fname)] = fname
    return out


def _merged(keys: list[KeySchema]) -> tuple[KeySchema, ...]:
    """One KeySchema per recipe key: a key over two fields keeps the wider range."""
    out: dict[str, KeySchema] = {}
    for k in keys:
        if k.name in out:
            first = out[k.name]
            out[k.name] = replace(first, field=None, max=first.max if first.max == k.max else None, max_open=False)
        else:
            out[k.name] = k
    return tuple(out.values())


def from_model(name: str, doc: str, model: type[BaseModel], **kw: Any) -> BlockSchema:
    """A block whose keys and nested blocks are the plan model's declared fields."""
    return BlockSchema(name, doc, keys=_merged(key_fields(model)), blocks=tuple(nested_blocks(model)),
                       model=model, **kw)


BLOCKS: list[BlockSchema] = [
    BlockSchema("recipe", "a fine-tuning recipe", keys=(
        K("model", "special", "a model card name, or hf(\"org/name\", revision = \"...\"), local(\"dir\"), "
          "gguf(\"file.gguf\")", required=True),
        K("task", "special", "causal_lm (default) or classify(labels = [a, b, ...])", default="causal_lm"),
        K("trust_remote_code", "bool", "run the model repository's own Python code when loading",
          default=P.ModelSource.model_fields["trust_remote_code"].default),
    ), blocks=("split", "method", "train", "hardware", "eval", "export"), statements=("data", "dataset")),
    from_model("data", "options of a data source", P.SourcePlan),
    BlockSchema("fields", "canonical field = column name in the file", keys=tuple(
        K(f, "str", f"the column holding the row's {f}") for f in CANONICAL_FIELDS)),
    from_model("split", "hold out part of a dataset for validation", P.SplitPlan, label="ident"),
    from_model("method.full", "train every parameter", P.FullMethod),
    from_model("method.lora", "low-rank adaptation (PEFT LoRA)", P.LoraMethod),
    from_model("method.qlora", "LoRA over a 4-bit quantized base (bitsandbytes)", P.QloraMethod),
    from_model("quant", "base-model quantization", P.QuantSpec),
    from_model("method.prefix", "prefix tuning (PEFT)", P.PrefixMethod),
    from_model("method.prompt", "prompt tuning (PEFT)", P.PromptMethod),
    from_model("method.adapter", "bottleneck adapter layers", P.AdapterMethod),
    from_model("method.ia3", "IA3: learned rescaling vectors (PEFT)", P.Ia3Method),
    from_model("train", "optimisation", P.TrainPlan),
    from_model("early_stop", "stop when a validation metric stops improving", P.EarlyStop),
    from_model("hardware", "where training runs (for the memory check and the launcher)", P.HardwarePlan),
    from_model("eval", "evaluation and gates", P.EvalPlan, statements=("gate", "forgetting")),
    from_model("generation", "decoding for generation metrics", P.GenerationSpec),
    from_model("export", "what to do with the result", P.ExportPlan),
    from_model("register", "publish to a local registry after the gates pass", P.RegistrySpec, label="str"),
    # a model card is stdlib input, not a plan block: ModelPlan holds the derived dimensions
    BlockSchema("model_card", "a base model's dimensions", keys=(
        K("source", "special", "hf(\"org/name\"), local(\"dir\"), gguf(...) or local_package(\"pkg\", \"dir\")",
          required=True),
        K("family", "enum", "architecture family", required=True,
          enum=tuple(FAMILIES)),
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


def keys(name: str) -> list[KeySchema]:
    """The keys of a block (type, default, range, unit, doc), e.g. keys("train"); [] for an unknown block."""
    b = _BY_NAME.get(name)
    return list(b.keys) if b else []


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
