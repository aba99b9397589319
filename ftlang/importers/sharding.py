"""DeepSpeed and FSDP settings of a foreign config → `hardware { strategy, zero_stage, offload_*, wrap, state_dict }`.

DeepSpeed: the JSON file the config names is read when it is next to the config (zero_optimization.stage,
offload_optimizer / offload_param device), else the stage and offload are read from the file name
(`zero3_bf16_cpuoffload_all.json`, `ds_z3_offload_config.json`). FSDP: accelerate's option names
(Axolotl's `fsdp` list and `fsdp_config`, torchtune's distributed keys).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ftlang.importers.common import Draft, multi_gpu

_STAGE = re.compile(r"(?:zero|_z)_?(\d)", re.I)
#: accelerate's FSDP option → (hardware key, value text by option value); unlisted values are noted
_FSDP_CONFIG = {
    "fsdp_offload_params": ("offload_params", {True: "true", False: "false"}),
    "fsdp_state_dict_type": ("state_dict", {"FULL_STATE_DICT": "full", "SHARDED_STATE_DICT": "sharded"}),
    "fsdp_auto_wrap_policy": ("wrap", {"TRANSFORMER_BASED_WRAP": "transformer", "SIZE_BASED_WRAP": "size"}),
    "fsdp_sharding_strategy": ("zero_stage", {"FULL_SHARD": "3", "SHARD_GRAD_OP": "2", 1: "3", 2: "2"}),
    "fsdp_reshard_after_forward": ("zero_stage", {True: "3", False: "2"}),
    "fsdp_cpu_offload": ("offload_params", {True: "true", False: "false"}),
}
#: the words of Axolotl's `fsdp:` list
_FSDP_WORDS = {"full_shard": ("zero_stage", "3"), "shard_grad_op": ("zero_stage", "2"),
               "offload": ("offload_params", "true"), "auto_wrap": ("wrap", "transformer")}


def _strategy(d: Draft, key: str, value: Any, name: str) -> bool:
    """Set the strategy when the key is set (False: an empty key, nothing more to read)."""
    if not value:
        d.done(key)
        return False
    d.set("hardware", "strategy", name)
    multi_gpu(d)
    return True


def deepspeed(d: Draft, key: str, value: Any) -> None:
    if not _strategy(d, key, value, "deepspeed"):
        return
    if not isinstance(value, str):
        d.skip(key, value, "the strategy is imported (`strategy = deepspeed`); an inline DeepSpeed config is not read")
        return
    stage, optimizer, params, source = _read(d.base / value, value)
    read = []
    if stage is not None:
        d.set("hardware", "zero_stage", str(stage))
        read.append(f"ZeRO stage {stage}")
    if optimizer:
        d.set("hardware", "offload_optimizer", "true")
        read.append("optimizer offload")
    if params:
        d.set("hardware", "offload_params", "true")
        read.append("parameter offload")
    d.done(key)
    d.notes.append(f"{key}: {value} — only {', '.join(read) or 'the strategy'} (read from the {source}) is "
                   "imported; the file's other settings are ftlang's own")


def _read(path: Path, name: str) -> tuple[int | None, bool, bool, str]:
    """(stage, offload optimizer, offload params, what was read) from the JSON file, else its name."""
    try:
        zero = json.loads(path.read_text(encoding="utf-8")).get("zero_optimization") or {}
    except (OSError, ValueError, AttributeError):
        m = _STAGE.search(Path(name).name)
        offload = "offload" in name.lower()
        stage = int(m.group(1)) if m and m.group(1) in "0123" else None
        return stage, offload, offload and stage == 3, "file name (the file is not next to the config)"

    def on_cpu(section: str) -> bool:
        part = zero.get(section)
        return isinstance(part, dict) and part.get("device") == "cpu"

    stage = zero.get("stage")
    return (stage if isinstance(stage, int) and 0 <= stage <= 3 else None), on_cpu("offload_optimizer"), \
        on_cpu("offload_param"), "JSON file"


def fsdp_words(d: Draft, key: str, value: Any) -> None:
    """Axolotl's `fsdp: [full_shard, auto_wrap, offload]`."""
    if not _strategy(d, key, value, "fsdp"):
        return
    words = value.split() if isinstance(value, str) else value if isinstance(value, list) else [value]
    for w in words:
        found = _FSDP_WORDS.get(str(w).lower())
        if found is None:
            d.skip(f"{key}.{w}", w, "not an FSDP option ftlang has")
        else:
            d.set("hardware", *found)
    d.done(key)


def fsdp_option(d: Draft, name: str, option: str, value: Any) -> None:
    """One accelerate FSDP option (`fsdp_state_dict_type: FULL_STATE_DICT`) onto its hardware key, or a note."""
    found = _FSDP_CONFIG.get(option)
    text = found[1].get(value) if found is not None and isinstance(value, (str, int, bool)) else None
    if text is None:
        d.skip(name, value, "ftlang's own fsdp setting applies (the wrapped layer is the model's block class)"
               if option == "fsdp_transformer_layer_cls_to_wrap" else None)
    else:
        d.set("hardware", found[0], text)
        d.done(name)


def fsdp_config(d: Draft, key: str, value: Any) -> None:
    if not isinstance(value, dict):
        d.done(key) if not value else d.skip(key, value, "a mapping of accelerate FSDP options")
        return
    for option, v in value.items():
        fsdp_option(d, f"{key}.{option}", option, v)
    d.done(key)
