"""LLaMA-Factory YAML (`llamafactory-cli train config.yaml`) → Draft. Its training keys are transformers'
TrainingArguments names (renamed by the alias table); datasets are names registered in
`<dataset_dir>/dataset_info.json`, read when the file is next to the config."""

from __future__ import annotations

import json
from typing import Any

from ftlang.importers import sharding
from ftlang.importers.common import (
    Draft,
    Source,
    add_source,
    data_call,
    identifier,
    names,
    precision,
    split_percent,
)
from ftlang.importers.models import MODEL_DOC, use_hub_model, use_local_model, use_template

TOOL = "llamafactory"
LABEL = "LLaMA-Factory"
#: the keys this module reads itself (the alias table renames the rest): key → what it becomes, for docs/migrating.md
HANDLED = {
    "model_name_or_path": MODEL_DOC,
    "finetuning_type": "`method lora` / `method full` (`freeze` is imported as full and noted)",
    "quantization_bit": "with `finetuning_type: lora`: 4 → `method qlora`, 8 → `method lora { load_in_8bit = true }`",
    "pure_bf16": "`precision = bf16, pure_bf16 = true`",
    "hub_model_id": "with `push_to_hub: true`: `export { push = \"org/name\" }`",
    "push_to_hub": "see `hub_model_id`",
    "max_samples": "`| head(N)` on each dataset (the first N rows of each)",
    "quantization_method": "`bnb`: nothing to do",
    "stage": "`sft`: ftlang's training; other stages are noted",
    "do_train": "true: nothing to do",
    "dataset": "one `data` source per name, read from `<dataset_dir>/dataset_info.json` next to the config "
               "(`file_name`, `formatting`, `columns`, `hf_hub_url`); the first is `dataset train`",
    "eval_dataset": "`dataset validation`",
    "dataset_dir": "where dataset_info.json and the files are",
    "val_size": "`split train { validation = N% }`",
    "template": "`template = \"…\"` when the stdlib has it (`qwen` → chatml)",
    "eval_strategy": "`epoch` → `eval { every = epoch }`; `steps` → `eval_steps`",
    "bf16": "`precision = bf16`",
    "fp16": "`precision = fp16`",
    "deepspeed": "`hardware { strategy = deepspeed, zero_stage, offload_optimizer, offload_params }` from the JSON "
                 "file (or its name)",
    "trust_remote_code": "`trust_remote_code = true`",
}
SIGNATURE = ("model_name_or_path", "stage", "finetuning_type", "dataset", "template", "cutoff_len", "lora_target",
             "do_train", "quantization_bit")
_ALPACA = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}


def _method(cfg: dict) -> str:
    kind = str(cfg.get("finetuning_type") or "lora").lower()
    if kind == "lora":
        return "qlora" if cfg.get("quantization_bit") == 4 else "lora"
    return "full"


def _info(d: Draft, cfg: dict) -> dict:
    path = d.base / str(cfg.get("dataset_dir") or "data") / "dataset_info.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _source(d: Draft, cfg: dict, info: dict, name: str) -> tuple[Source, str | None]:
    """A dataset_info.json entry as a data source; (source, why it needs a look) when it is not found."""
    folder = str(cfg.get("dataset_dir") or "data")
    entry = info.get(name)
    sid = identifier(name, "data")
    if not isinstance(entry, dict):
        return Source(sid, data_call("", files=f"{folder}/{name}.json")), \
            f"`{name}` is not in {folder}/dataset_info.json: fill in its file and format"
    columns = entry.get("columns") or {}
    if entry.get("hf_hub_url"):
        call = data_call(entry["hf_hub_url"], entry.get("split"), config=entry.get("subset"),
                         revision=entry.get("revision"))
    else:
        call = data_call("", files=f"{folder}/{entry.get('file_name', name + '.json')}")
    if entry.get("formatting") == "sharegpt":
        tags = entry.get("tags") or {}
        sharegpt = tags.get("role_tag", "from") == "from"
        column = columns.get("messages", "conversations")
        return Source(sid, call, "chat", {"conversations" if sharegpt else "messages": column}), None
    fields = {_ALPACA[k]: v for k, v in columns.items() if k in _ALPACA and v != _ALPACA[k]}
    lost = sorted(set(columns) - set(_ALPACA))
    return Source(sid, call, "instruction", fields), (f"columns {lost} of `{name}` are not read" if lost else None)


def _datasets(d: Draft, cfg: dict, key: str, value: Any) -> None:
    datasets = names(value)
    if not datasets:
        d.skip(key, value, "a dataset name, or names separated by commas")
        return
    info = _info(d, cfg)
    for i, name in enumerate(datasets):
        source, why = _source(d, cfg, info, name)
        add_source(d, source, "train" if key == "dataset" else "validation", key if i == 0 else f"{key}[{i}]",
                   name)
        if why:
            d.notes.append(f"{key}: {name} — {why}")


_DONE_WHEN = {"stage": "sft", "do_train": True, "quantization_method": "bnb", "finetuning_type": None,
              "flash_attn": "auto",  # transformers picks the attention: ftlang's default too
              "quantization_bit": 4, "dataset_dir": None}


def _push(d: Draft, cfg: dict, key: str, value: Any) -> None:
    """transformers pushes to `hub_model_id` only with `push_to_hub: true`."""
    if key == "hub_model_id" and cfg.get("push_to_hub") is True:
        d.put(key, value)
    elif key == "push_to_hub" and (value is not True or cfg.get("hub_model_id")):
        d.done(key)
    else:
        d.skip(key, value, "a push needs both `push_to_hub: true` and `hub_model_id`")


def convert(cfg: dict, d: Draft) -> None:
    d.method = _method(cfg)
    cap = cfg.get("max_samples")
    d.head = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1 else None
    for key, value in cfg.items():
        if key == "model_name_or_path":
            (use_local_model if str(value).startswith((".", "/")) else use_hub_model)(d, str(value))
            d.done(key)
        elif key in _DONE_WHEN and (_DONE_WHEN[key] is None or value == _DONE_WHEN[key]):
            if key == "finetuning_type" and str(value).lower() not in ("lora", "full"):
                d.skip(key, value, "imported as a full fine-tune (ftlang freezes no layer subsets)")
            else:
                d.done(key)  # read into the method / datasets above, or ftlang's only behaviour (SFT)
        elif key == "max_samples" and d.head is not None:
            d.done(key)  # `| head(N)` on each dataset (written by write.py)
        elif key in ("dataset", "eval_dataset"):
            _datasets(d, cfg, key, value)
        elif key == "val_size":
            split_percent(d, key, value)
        elif key in ("bf16", "fp16"):
            precision(d, key, value)
        elif key == "template":
            use_template(d, key, value)
        elif key in ("eval_strategy", "evaluation_strategy"):
            if value == "epoch":
                d.set("eval", "every", "epoch")
            if value in ("epoch", "steps", "no"):
                d.done(key)  # steps: eval_steps says how often
            else:
                d.skip(key, value)
        elif key == "deepspeed":
            sharding.deepspeed(d, key, value)
        elif key == "quantization_bit" and value == 8 and d.method == "lora":
            d.set("method.lora", "load_in_8bit", "true")
            d.done(key)
        elif key in ("push_to_hub", "hub_model_id"):
            _push(d, cfg, key, value)
        elif key == "pure_bf16":
            precision(d, key, value)
        elif key == "trust_remote_code":
            d.set("recipe", key, "true" if value else "false")
            d.done(key)
        elif key in ("lora_rank", "lora_alpha", "lora_dropout", "lora_target") and d.method == "full":
            d.skip(key, value, "a full fine-tune has no LoRA settings")
        elif value is None:
            d.done(key)
        else:
            d.put(key, value)
