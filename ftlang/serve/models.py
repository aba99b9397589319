"""The model pool behind `ftlang serve`: one base, several PEFT adapters, one generation at a time.

The first adapter is attached with `PeftModel.from_pretrained`, the rest with `load_adapter`; each
request selects its adapter with `set_adapter` (or `disable_adapter()` for the model "base") under
a lock, because the active adapter is state shared by every thread. torch is imported lazily.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftlang.diagnostics import DiagnosticError, error

BASE = "base"


def _fail(message: str, help: str) -> DiagnosticError:
    return DiagnosticError(error("FT840", message, None, help=help))


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"


def parse_adapter(spec: str) -> tuple[str, str]:
    """NAME=PATH, as given to --adapter."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise _fail(f"--adapter {spec!r} is not NAME=PATH", "for example: --adapter support=runs/support/export/adapter")
    if name == BASE:
        raise _fail("the adapter name 'base' is reserved for the base model without an adapter",
                    "choose another name")
    return name, path


def registry_adapters(registry_dir: str | Path) -> dict[str, str]:
    """name → adapter dir of the production version of every registry model (else its latest)."""
    from ftlang.registry import Registry

    reg = Registry(registry_dir)
    out: dict[str, str] = {}
    for name in reg.names():
        versions = reg.versions(name)
        if not versions:
            continue
        version = reg.production(name) or versions[-1]
        adapter = Path(registry_dir) / name / version / "adapter"
        if (adapter / "adapter_config.json").is_file():
            out[name] = str(adapter)
    return out


def _load_base(base: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(base)
    if p.suffix == ".gguf":
        if not p.is_file():
            raise _fail(f"--base {base}: no such GGUF file", "pass an existing .gguf file, a model dir or a hub id")
        kw = {"gguf_file": p.name}
        where = str(p.parent)
    elif p.is_dir():
        if not (p / "config.json").is_file():
            raise _fail(f"--base {base}: the directory has no config.json", "pass a saved Hugging Face model directory")
        kw, where = {}, str(p)
    else:
        kw, where = {}, base  # a hub id (offline: must already be in the local cache)
    kw["trust_remote_code"] = False  # a served base never runs code shipped with it
    try:
        model_kw = kw if "gguf_file" in kw else {**kw, "use_safetensors": True}
        model = AutoModelForCausalLM.from_pretrained(where, **model_kw)
        tokenizer = AutoTokenizer.from_pretrained(where, **kw)
    except OSError as e:
        raise _fail(f"--base {base}: cannot load: {e}", "check the path or hub id (and that it is cached offline)") from e
    return model, tokenizer


class ModelPool:
    def __init__(self, base: str, adapters: dict[str, str], max_tokens_cap: int = 512, device: str = "cpu"):
        self.base_name = base
        self.max_tokens_cap = max_tokens_cap
        self.lock = threading.Lock()
        model, tokenizer = _load_base(base)
        for name, path in adapters.items():
            if not (Path(path) / "adapter_config.json").is_file():
                raise _fail(f"adapter {name}: {path} is not a PEFT adapter directory (no adapter_config.json)",
                            "pass export/adapter of a run, or a registry version's adapter/")
        if adapters:
            from peft import PeftModel

            items = list(adapters.items())
            model = PeftModel.from_pretrained(model, items[0][1], adapter_name=items[0][0])
            for name, path in items[1:]:
                model.load_adapter(path, adapter_name=name)
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model = model.to(device)
        self.model.eval()
        self.tokenizer = tokenizer
        self.adapters = dict(adapters)

    def names(self) -> list[str]:
        return [BASE, *self.adapters]

    def _render_chat(self, messages: list[dict]) -> str:
        from ftlang.backend.metrics import render_prompt

        return render_prompt(self.tokenizer, messages)

    def chat(self, model: str, messages: list[dict], **gen: Any) -> Completion:
        return self._generate(model, self._render_chat(messages), **gen)

    def complete(self, model: str, prompt: str, **gen: Any) -> Completion:
        return self._generate(model, prompt, **gen)

    def _generate(self, name: str, prompt: str, max_tokens: int = 64, temperature: float | None = None,
                  top_p: float | None = None, stop: list[str] | None = None) -> Completion:
        import contextlib

        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": pad}
        if temperature:  # absent or 0: greedy, so answers are reproducible
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=float(top_p or 1.0))
        else:
            kwargs["do_sample"] = False
        if tok.eos_token_id is not None:
            kwargs["eos_token_id"] = tok.eos_token_id
        # the lock also covers the tokenizer: a fast tokenizer shared by threads raises "Already borrowed"
        with self.lock:
            enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
            if name == BASE and self.adapters:
                ctx = self.model.disable_adapter()
            else:
                if self.adapters:
                    self.model.set_adapter(name)
                ctx = contextlib.nullcontext()
            with ctx, torch.no_grad():
                out = self.model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
            new = out[0, enc["input_ids"].shape[1]:]
            text = tok.decode(new, skip_special_tokens=True)
        finish = "stop" if (tok.eos_token_id is not None and len(new) and int(new[-1]) == tok.eos_token_id) else "length"
        for s in stop or []:
            if s and s in text:
                text, finish = text[: text.index(s)], "stop"
        if len(new) < max_tokens:
            finish = "stop"
        return Completion(text=text, prompt_tokens=int(enc["input_ids"].shape[1]), completion_tokens=int(len(new)),
                          finish_reason=finish)

    def describe(self) -> str:
        return json.dumps({"base": self.base_name, "adapters": self.adapters})
