"""torchtune YAML (`tune run <recipe> --config file.yaml`) → Draft. Builders are `_component_` dotted paths:
the model builder names the model and the method (`lora_llama3_1_8b`, `qlora_…`, or none: full); nested
keys are read as `section.key` and renamed through the alias table by their last part."""

from __future__ import annotations

import re
from typing import Any

from ftlang.importers import sharding
from ftlang.importers.common import LOADERS, Draft, Source, add_source, data_call, modules, multi_gpu
from ftlang.importers.models import use_card_name, use_local_model
from ftlang.semantic import aliases

TOOL = "torchtune"
LABEL = "torchtune"
#: the keys this module reads itself (the alias table renames the rest): key → what it becomes, for docs/migrating.md
HANDLED = {
    "model._component_": "`model` (the stdlib card the builder names: `lora_llama3_1_8b` → `llama31_8b`) and the "
                         "method (`lora_…` → lora, `qlora_…` → qlora, no prefix → full); no card: "
                         "`local(checkpoint_dir)`",
    "model.lora_attn_modules": "`targets` (`output_proj` → `o_proj`)",
    "model.apply_lora_to_mlp": "adds `gate_proj, up_proj, down_proj` to `targets`",
    "dataset": "`data` + `dataset train`: `alpaca_dataset`, `alpaca_cleaned_dataset`, `slimorca_dataset`, "
               "`samsum_dataset` → `hf_dataset(…)`; `instruct_dataset` / `chat_dataset` / `text_completion_dataset`"
               " with `source: json` + `data_files` → a local file with its `column_map`",
    "dataset.packed": "`packing`",
    "dataset.train_on_input": "`train_on = all` / `assistant`",
    "dataset_val": "`dataset validation`",
    "optimizer._component_": "`optimizer` (`torch.optim.AdamW` → adamw, `bitsandbytes.optim.PagedAdamW8bit` → "
                             "paged_adamw_8bit, …)",
    "lr_scheduler._component_": "`schedule` (`get_cosine_schedule_with_warmup` → cosine)",
    "fsdp_cpu_offload": "a distributed recipe: `hardware { strategy = fsdp, offload_params }`",
    "fsdp_reshard_after_forward": "`hardware { strategy = fsdp, zero_stage = 3 }` (false: 2)",
    "device": "`hardware { device = … }`",
    "shuffle": "true: what ftlang does (the training set is shuffled every epoch)",
    "optimizer.fused": "true: ftlang's `adamw` is the fused kernel",
    "max_steps_per_epoch": "with `epochs: 1`: `max_steps`",
    "loss._component_": "`CEWithChunkedOutputLoss` → `train { loss = chunked }`, `CrossEntropyLoss` → "
                        "`loss = standard`",
    "loss.num_output_chunks": "ftlang's chunked loss chooses its own slice count",
}
SIGNATURE = ("model", "tokenizer", "checkpointer", "optimizer", "loss", "metric_logger")
_MLP = ["gate_proj", "up_proj", "down_proj"]
#: torchtune's hub dataset builders: (hub id, format, fields)
_BUILTIN = {
    "alpaca_dataset": ("tatsu-lab/alpaca", "instruction", {}),
    "alpaca_cleaned_dataset": ("yahma/alpaca-cleaned", "instruction", {}),
    "slimorca_dataset": ("Open-Orca/SlimOrca-Dedup", "chat", {"conversations": "conversations"}),
    "samsum_dataset": ("Samsung/samsum", "instruction", {"instruction": "dialogue", "output": "summary"}),
}
#: keys of distributed recipes (lora_finetune_distributed, full_finetune_distributed): FSDP
_FSDP_KEYS = ("fsdp_cpu_offload", "fsdp_sharding_strategy", "custom_sharded_layers", "fsdp_reshard_after_forward",
              "data_parallel_shard_dim", "data_parallel_replicate_dim")


def _leaf(component: Any) -> str:
    return str(component or "").rpartition(".")[2]


def _model(d: Draft, section: dict) -> None:
    builder = _leaf(section.get("_component_"))
    m = re.match(r"^(q?lora_)?(.+)$", builder)
    kind, base = (m.group(1) or "", m.group(2)) if m else ("", builder)
    d.method = {"lora_": "lora", "qlora_": "qlora"}.get(kind, "full")
    card = re.sub(r"^([a-z]+\d)_(\d)_", r"\1\2_", base)  # llama3_1_8b → llama31_8b, qwen2_5_7b → qwen25_7b
    if use_card_name(d, card) or use_card_name(d, re.sub(r"_(base|instruct)$", "", card)):
        d.done("model._component_")
    targets = modules(section.get("lora_attn_modules"))
    for key, value in section.items():
        name = f"model.{key}"
        if key == "_component_":
            continue  # read above
        if key == "lora_attn_modules" and not all(t.isidentifier() for t in targets):
            targets = []
            d.skip(name, value, "not a list of module names")
        elif key in ("lora_attn_modules", "quantize_base"):
            d.done(name)
        elif key == "apply_lora_to_mlp":
            targets += _MLP if value else []
            d.done(name)
        elif key == "apply_lora_to_output":
            d.done(name) if not value else d.skip(name, value, "the output projection (lm_head) is not a target")
        elif d.method == "full":
            d.skip(name, value, "a model builder argument ftlang takes from the model card")
        else:
            d.put(name, value)
    if targets and d.method != "full":
        d.set(d.method_block(), "targets", "[" + ", ".join(dict.fromkeys(targets)) + "]")


def _dataset(d: Draft, key: str, section: Any, role: str) -> None:
    if not isinstance(section, dict):
        d.skip(key, section, "a dataset is one builder")
        return
    builder = _leaf(section.get("_component_"))
    used = {"_component_", "source", "data_files", "split", "column_map", "conversation_column",
            "conversation_style", "column"}
    columns = section.get("column_map") or {}
    if not isinstance(columns, dict):
        d.skip(f"{key}.column_map", columns, "a mapping of torchtune's column names to the file's")
        columns = {}
    if builder in _BUILTIN:
        hub, fmt, fields = _BUILTIN[builder]
        source = Source(builder.removesuffix("_dataset"), data_call(hub, section.get("split")), fmt, dict(fields))
    else:
        src = str(section.get("source") or "")
        files = section.get("data_files")
        files = files if isinstance(files, str) else None
        if src in LOADERS and files and not any(files.endswith(e) for e in (".json", ".jsonl", ".csv", ".parquet")):
            d.notes.append(f"{key}.data_files: {files} — ftlang reads jsonl, json, csv and parquet files: convert it "
                           "and fill in the path")
            files = files.rpartition(".")[0] + ".jsonl"
        call = data_call(src, section.get("split"), files)
        if builder == "chat_dataset":
            style = section.get("conversation_style", "sharegpt")
            column = section.get("conversation_column", "conversations")
            source = Source("chat", call, "chat", {"conversations" if style == "sharegpt" else "messages":
                                                   column})
        elif builder == "text_completion_dataset":
            source = Source("text", call, "completion", {"text": section.get("column", "text")})
        else:  # instruct_dataset: torchtune's `input` column is the prompt (ftlang's instruction)
            names = {"input": "instruction", "output": "output", "system": "system"}
            source = Source("instruct", call, "instruction",
                            {names[k]: v for k, v in columns.items() if k in names and names[k] != v})
            if builder != "instruct_dataset":
                d.skip(f"{key}._component_", builder, "not a dataset builder ftlang knows; read as instruction rows")
    for k, v in section.items():
        name = f"{key}.{k}"
        if k == "packed" and role == "train":
            d.set("train", "packing", "true" if v else "false")
            d.done(name)
        elif k == "train_on_input" and role == "train":
            d.set("train", "train_on", "all" if v else "assistant")
            d.done(name)
        elif k not in used:
            d.skip(name, v)
    d.done(*(f"{key}.{k}" for k in used if k in section))
    add_source(d, source, role, key, section)


def _section_of(cfg: dict, key: str) -> dict:
    value = cfg.get(key)
    return value if isinstance(value, dict) else {}


def convert(cfg: dict, d: Draft) -> None:
    model = _section_of(cfg, "model")
    if model:
        _model(d, model)
    elif "model" in cfg:
        d.skip("model", cfg["model"], "a torchtune model is a `_component_` builder section")
    if "model._component_" not in d.handled:  # no stdlib card: the checkpoint folder the config loads
        folder = _section_of(cfg, "checkpointer").get("checkpoint_dir")
        use_local_model(d, str(folder or "FILL-IN/model"))
        d.todo.append(f"no stdlib card for the builder {_leaf(model.get('_component_'))}: the model is the checkpoint "
                      "folder; copy it into the project (or use hf(\"org/name\"))")
        d.done("model._component_")
    for key, value in cfg.items():
        if key == "model":
            continue
        if key in ("dataset", "dataset_val"):
            _dataset(d, key, value, "train" if key == "dataset" else "validation")
        elif key in _FSDP_KEYS:
            d.set("hardware", "strategy", "fsdp")  # only distributed recipes have these keys
            multi_gpu(d)
            sharding.fsdp_option(d, key, key, value)
        elif key == "max_steps_per_epoch" and value is not None:
            if cfg.get("epochs", 1) == 1:  # one epoch cut at N steps is `max_steps = N`
                d.put(key, value, leaf="max_steps")
            else:
                d.skip(key, value, "each epoch cut short is not expressible; `max_steps` caps the whole run")
        elif key == "shuffle" and value is True:
            d.done(key)  # the trainer shuffles the training set every epoch
        elif key == "device":
            d.put(key, value) if value in ("cpu", "cuda") else d.skip(key, value)
        elif isinstance(value, dict):
            _section(d, key, value)
        elif value is None:
            d.done(key)
        else:
            d.put(key, value)


#: torchtune loss builders → `train { loss }`
_LOSSES = {"CEWithChunkedOutputLoss": "chunked", "CrossEntropyLoss": "standard"}


def _section(d: Draft, key: str, section: dict) -> None:
    for k, v in section.items():
        name = f"{key}.{k}"
        if key == "tokenizer" and k == "_component_":
            d.done(name)  # the model's own tokenizer, which ftlang loads with it
        elif key == "optimizer" and k == "fused" and v is True:
            d.done(name)  # ftlang's adamw is the fused kernel
        elif key == "loss" and k == "_component_" and _leaf(v) in _LOSSES:
            d.set("train", "loss", _LOSSES[_leaf(v)])
            d.done(name)
        elif key == "loss" and k == "num_output_chunks":
            d.done(name)  # ftlang's chunked loss picks its own slice count (the memory it saves is the same idea)
        elif key in ("optimizer", "lr_scheduler") and k == "_component_":
            d.put(name, v, leaf="optimizer" if key == "optimizer" else "schedule")
        elif key in ("optimizer", "lr_scheduler") or key == "tokenizer" and k == "max_seq_len":
            d.put(name, v)
        else:
            alias = aliases.lookup(key)  # the table says why a whole section is ftlang's own business
            d.skip(name, v, alias.fix if alias is not None and alias.fix else None)
