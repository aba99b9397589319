"""Hand-over to serving engines built for scale: vLLM's OpenAI server and Hugging Face TGI.

Both serve PEFT LoRA adapters beside one base model, so only LoRA adapters (without DoRA) go:
anything else is refused with a diagnostic naming the reason and the alternative (ftlang's own
server, or merging the adapter into the base). Torch-free: adapters are read from their JSON
config only.

- `vllm_command(base, adapters, ...)`: `vllm serve BASE --enable-lora --lora-modules NAME=PATH ...
  --max-lora-rank R --max-loras N`, R the smallest rank vLLM accepts that holds every adapter.
- `export_for_engine(registry, name, version, to, fmt)`: the registry version's adapter laid out as
  the engine loads it (`TO/NAME/adapter_config.json`, `adapter_model.safetensors`) plus a launch
  file (`vllm.sh`, or `tgi.env` with MODEL_ID and LORA_ADAPTERS).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import uuid
from pathlib import Path

from ftlang.atomic import write_text
from ftlang.diagnostics import DiagnosticError, error

VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's MaxLoRARanks
ENGINE_FILES = ("adapter_config.json", "adapter_model.safetensors")
FORMATS = ("vllm", "tgi")


def _fail(message: str, help: str) -> DiagnosticError:
    return DiagnosticError(error("FT840", message, None, help=help))


def lora_config(name: str, path: str | Path, engine: str) -> dict:
    """The adapter's PEFT config, or FT840 when `engine` cannot load it."""
    from ftlang.backend.adapters import is_adapter_dir

    p = Path(path)
    alternative = "serve it with ftlang's own server (`ftlang serve` without --engine)"
    if is_adapter_dir(p):
        raise _fail(f"adapter {name}: {engine} cannot serve ftlang bottleneck adapters (extra layers, not a "
                    "LoRA weight delta)", f"{alternative}, which batches them with LoRA adapters")
    try:
        config = json.loads((p / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _fail(f"adapter {name}: {p} has no readable adapter_config.json ({e})",
                    "pass export/adapter of a run, or a registry version's adapter/") from None
    kind = config.get("peft_type")
    if kind != "LORA" or config.get("use_dora"):
        what = "DoRA" if kind == "LORA" else str(kind)
        raise _fail(f"adapter {name}: {engine} serves LoRA adapters only, not {what}",
                    f"{alternative}, or export the run with `merge = true` and serve the merged model")
    if not (p / "adapter_model.safetensors").is_file():
        raise _fail(f"adapter {name}: {p} has no adapter_model.safetensors", "export the adapter with safetensors")
    return config


def adapter_rank(config: dict) -> int:
    ranks = [int(config.get("r") or 8), *(int(v) for v in (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_command(base: str, adapters: dict[str, str], host: str = "127.0.0.1", port: int = 8000,
                 executable: str = "vllm") -> list[str]:
    cmd = [executable, "serve", base, "--host", host, "--port", str(port), "--served-model-name", "base"]
    if not adapters:
        return cmd
    ranks = [adapter_rank(lora_config(n, p, "vLLM")) for n, p in adapters.items()]
    rank = next((r for r in VLLM_RANKS if r >= max(ranks)), None)
    if rank is None:
        raise _fail(f"an adapter has rank {max(ranks)}, over vLLM's largest LoRA rank {VLLM_RANKS[-1]}",
                    "serve it with `ftlang serve` without --engine, or train with a smaller r")
    cmd += ["--enable-lora", "--lora-modules", *(f"{n}={p}" for n, p in adapters.items()),
            "--max-lora-rank", str(rank), "--max-loras", str(len(adapters))]
    return cmd


def export_for_engine(registry_dir: str | Path, name: str, version: str | None, to: str | Path, fmt: str) -> Path:
    """Copy a registry version's LoRA adapter to TO/NAME and write the engine's launch file."""
    from ftlang.registry import Registry

    if fmt not in FORMATS:
        raise _fail(f"unknown export format {fmt!r}", f"formats: {', '.join(FORMATS)}")
    reg = Registry(registry_dir)
    manifest = reg.manifest(name, version)
    source = reg.path(name, manifest["version"]) / "adapter"
    lora_config(name, source, "vLLM" if fmt == "vllm" else "TGI")
    out = Path(to)
    target = out / name
    if target.exists() and any(target.iterdir()):
        raise _fail(f"{target} exists and is not empty", "export to another --to directory, or remove it first")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for f in ENGINE_FILES:
            shutil.copy2(source / f, tmp / f)
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)  # the adapter appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    base = str(manifest.get("base") or "BASE_MODEL")
    if fmt == "vllm":
        cmd = vllm_command(base, {name: str(target.resolve())})
        write_text(out / "vllm.sh", "#!/bin/sh\n# written by `ftlang registry export`: vLLM's OpenAI server "
                   f"with this adapter\nexec {shlex.join(cmd)} \"$@\"\n", mode=0o755)
    else:
        write_text(
            out / "tgi.env", "# written by `ftlang registry export`: for text-generation-launcher, or docker run --env-file with\n"
            f"# this directory mounted at /data (-v {out.resolve()}:/data)\n"
            f"MODEL_ID={base}\nLORA_ADAPTERS={name}=/data/{name}\n")
    return target
