"""Axolotl YAML → Draft. Keys per Axolotl's config reference (docs/config.qmd); the names it shares with
transformers' TrainingArguments are renamed by the alias table (semantic/aliases.py)."""

from __future__ import annotations

from typing import Any

from ftlang.importers import sharding
from ftlang.importers.common import (
    Draft,
    Source,
    add_source,
    data_call,
    identifier,
    number,
    precision,
    quote,
    split_percent,
)
from ftlang.importers.models import MODEL_DOC, use_hub_model, use_local_model, use_template

TOOL = "axolotl"
LABEL = "Axolotl"
#: keys whose presence says a config is Axolotl's
#: the keys this module reads itself (the alias table renames the rest): key → what it becomes, for docs/migrating.md
HANDLED = {
    "base_model": MODEL_DOC,
    "adapter": "`method lora` / `method qlora`; absent: `method full`",
    "load_in_4bit": "with `adapter: lora` or `qlora`: `method qlora`",
    "load_in_8bit": "with `adapter: lora`: `method lora { load_in_8bit = true }`",
    "gradient_checkpointing_kwargs": "`use_reentrant` → `train { reentrant_checkpointing }`",
    "lora_target_linear": "`targets = all_linear`",
    "datasets": "`data NAME = jsonl/json/csv/parquet(\"path\")` or `hf_dataset(\"org/name\", split = …)`; type "
                "`alpaca` → instruction, `chat_template`/`sharegpt` → chat (`messages`/`conversations`), "
                "`completion` → completion, a custom `field_*` type → instruction `fields`; the first is "
                "`dataset train`",
    "test_datasets": "`dataset validation`",
    "val_set_size": "`split train { validation = N% }`",
    "bf16": "`precision = bf16` (`auto` too); `full`: `precision = bf16, pure_bf16 = true`",
    "fp16": "`precision = fp16`",
    "train_on_inputs": "`train_on = all` (true) / `assistant` (false)",
    "chat_template": "`template = \"…\"` when the stdlib has it",
    "deepspeed": "`hardware { strategy = deepspeed, zero_stage, offload_optimizer, offload_params }` from the JSON "
                 "file (or its name)",
    "fsdp": "`hardware { strategy = fsdp }`; `full_shard` / `shard_grad_op` → `zero_stage = 3 / 2`, `offload` → "
            "`offload_params = true`",
    "fsdp_config": "`fsdp_offload_params` → `offload_params`, `fsdp_state_dict_type` → `state_dict`, "
                   "`fsdp_auto_wrap_policy` → `wrap`, `fsdp_sharding_strategy` → `zero_stage`",
    "flash_attention": "true: `train { attention = flash_attention_2 }`",
    "sdp_attention": "true: `train { attention = sdpa }`",
    "eager_attention": "true: `train { attention = eager }`",
    "special_tokens": "`pad_token` → `train { pad_token = \"…\" }`; the others are noted",
    "evals_per_epoch": "`eval { every = 1/N }` (a fraction of an epoch; 1: `every = epoch`)",
}
SIGNATURE = ("base_model", "micro_batch_size", "sequence_len", "adapter", "lora_target_linear", "val_set_size",
             "num_epochs", "sample_packing", "lr_scheduler", "datasets")


#: Axolotl's attention switches (true/false) → `train { attention = … }`
_ATTENTION = {"flash_attention": "flash_attention_2", "sdp_attention": "sdpa", "eager_attention": "eager"}


def _method(cfg: dict) -> str:
    adapter = str(cfg.get("adapter") or "").lower()
    if adapter == "qlora" or adapter == "lora" and cfg.get("load_in_4bit"):
        return "qlora"
    return "lora" if adapter == "lora" else "full"


def _dataset(d: Draft, i: int, entry: Any, role: str, key: str) -> None:
    where = f"{key}[{i}]"
    if not isinstance(entry, dict) or "path" not in entry:
        d.skip(key if i == 0 else where, entry, "a dataset entry needs `path`")
        return
    kind = entry.get("type") or "alpaca"
    fmt, fields = "instruction", {}
    used = {"path", "type", "ds_type", "data_files", "split", "name", "revision"}
    if isinstance(kind, dict):  # a custom instruction format: field_instruction / field_input / field_output
        names = {"instruction": "field_instruction", "input": "field_input", "output": "field_output",
                 "system": "field_system"}
        fields = {k: kind[v] for k, v in names.items() if kind.get(v)}
        for k in kind:
            if k not in names.values():
                d.skip(f"{where}.type.{k}", kind[k])
    elif kind in ("chat_template", "sharegpt") or str(kind).startswith("chat_template."):
        fmt = "chat"
        column = entry.get("field_messages") or "conversations" if kind == "sharegpt" else \
            entry.get("field_messages") or "messages"
        sharegpt = kind == "sharegpt" or entry.get("message_field_role") == "from"
        fields = {"conversations" if sharegpt else "messages": column}
        used |= {"field_messages", "message_field_role", "message_field_content", "conversation"}
        if entry.get("roles_to_train") not in (None, ["assistant"], ("assistant",)):
            d.skip(f"{where}.roles_to_train", entry["roles_to_train"], "ftlang trains on assistant turns "
                   "(`train_on = assistant`) or on every token (`train_on = all`)")
        used.add("roles_to_train")
        if entry.get("chat_template") not in (None, "tokenizer_default"):
            d.skip(f"{where}.chat_template", entry["chat_template"], "set the recipe's `train { template = … }`")
        used.add("chat_template")
    elif kind == "completion":
        fmt, fields = "completion", {"text": entry.get("field") or "text"}
        used.add("field")
    elif kind != "alpaca":
        d.skip(f"{where}.type", kind, "not an instruction, chat or completion format ftlang reads; "
                                      "imported as instruction rows")
    files = entry.get("data_files")
    files = files[0] if isinstance(files, list) and len(files) == 1 else files
    if isinstance(files, list):
        d.skip(f"{where}.data_files", files, "a data source is one file")
        files = None
    path = str(entry["path"])
    call = data_call(path, entry.get("split"), files if isinstance(files, str) else None, config=entry.get("name"),
                     revision=entry.get("revision"))
    name = identifier(path.rstrip("/").rpartition("/")[2].split(".")[0], "data")
    for k, v in entry.items():
        if k not in used:
            d.skip(f"{where}.{k}", v)
    add_source(d, Source(name, call, fmt, fields), role, key if i == 0 else where, entry)


def _datasets(d: Draft, key: str, value: Any, role: str) -> None:
    if value is None or value == []:
        d.done(key)  # none given: nothing to import
        return
    entries = value if isinstance(value, list) else [value]
    for i, entry in enumerate(entries):
        _dataset(d, i, entry, role, key)


def _special_tokens(d: Draft, key: str, value: dict) -> None:
    for name, token in value.items():
        if name == "pad_token" and isinstance(token, str):
            d.set("train", "pad_token", quote(token))
            d.done(f"{key}.{name}")
        else:
            d.skip(f"{key}.{name}", token, "only the pad token is a recipe key; the others are the tokenizer's own")
    d.done(key)


def _eight_bit(d: Draft, key: str, value: Any) -> None:
    if not value:
        d.done(key)
    elif d.method == "lora":
        d.set("method.lora", "load_in_8bit", "true")
        d.done(key)
    else:
        d.skip(key, value, "an 8-bit base is for `method lora` (`load_in_8bit = true`)")


def convert(cfg: dict, d: Draft) -> None:
    d.method = _method(cfg)
    for key, value in cfg.items():
        if key == "base_model":
            (use_local_model if str(value).startswith((".", "/")) else use_hub_model)(d, str(value))
            d.done(key)
        elif key in ("adapter", "load_in_4bit"):
            d.done(key)  # read into the method above
        elif key == "load_in_8bit":
            _eight_bit(d, key, value)
        elif key == "gradient_checkpointing_kwargs" and isinstance(value, dict):
            for k, v in value.items():
                d.put(f"{key}.{k}", v)
            d.done(key)
        elif key == "lora_target_linear":
            if value and "lora_target_modules" not in cfg:
                d.set(d.method_block(), "targets", "all_linear")
            d.done(key)
        elif key in ("datasets", "test_datasets"):
            _datasets(d, key, value, "train" if key == "datasets" else "validation")
        elif key == "val_set_size":
            split_percent(d, key, value)
        elif key in ("bf16", "fp16"):  # `bf16: full` is pure bf16
            precision(d, key, value)
        elif key == "train_on_inputs":
            d.set("train", "train_on", "all" if value else "assistant")
            d.done(key)
        elif key == "chat_template":
            d.done(key) if value == "tokenizer_default" else use_template(d, key, value)
        elif key in _ATTENTION:
            d.set("train", "attention", _ATTENTION[key]) if value else None
            d.done(key)
        elif key == "evals_per_epoch" and isinstance(value, int) and value >= 1:
            d.set("eval", "every", "epoch" if value == 1 else number(round(1 / value, 6)))
            d.done(key)
        elif key == "special_tokens" and isinstance(value, dict):
            _special_tokens(d, key, value)
        elif key == "deepspeed":
            sharding.deepspeed(d, key, value)
        elif key == "fsdp":
            sharding.fsdp_words(d, key, value)
        elif key == "fsdp_config":
            sharding.fsdp_config(d, key, value)
        elif key in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules") and d.method == "full":
            d.skip(key, value, "a full fine-tune has no LoRA settings")
        elif value is None:
            d.done(key)  # an empty key is Axolotl's default
        else:
            d.put(key, value)
