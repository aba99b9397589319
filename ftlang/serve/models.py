"""The model pool behind `ftlang serve`: one base, the adapters given at start-up, one engine.

PEFT adapters are attached with `PeftModel.from_pretrained` / `load_adapter`, ftlang's bottleneck
adapters through serve/bottleneck.py. Requests never name a path: a model is one of `names()`, fixed
when the server starts. The pool says which models can share a batch (`can_share`) and sets the
per-row adapter choice for one `generate` (`selecting`); serve/engine.py runs the batches.
torch is imported lazily.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftlang.diagnostics import DiagnosticError, error
from ftlang.serve.engine import PEFT_BASE, Completion, Engine, Request

BASE = "base"


def _fail(message: str, help: str) -> DiagnosticError:
    return DiagnosticError(error("FT840", message, None, help=help))


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
        if adapter_kind(adapter):
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


def adapter_kind(path: str | Path) -> str | None:
    """"lora" (PEFT LoRA without DoRA: mixable per row), "peft" (any other PEFT method: one adapter per
    batch), "bottleneck" (ftlang's own, mixable per row), or None for a directory that holds no adapter."""
    from ftlang.backend.adapters import is_adapter_dir

    p = Path(path)
    if is_adapter_dir(p):
        return "bottleneck"
    config = p / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return "lora" if data.get("peft_type") == "LORA" and not data.get("use_dora") else "peft"


def _peft_type(path: str | Path) -> str:
    try:
        return str(json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type"))
    except (OSError, ValueError):
        return "?"


class ModelPool:
    def __init__(self, base: str, adapters: dict[str, str], max_tokens_cap: int = 512, device: str = "cpu",
                 max_batch: int = 16, batch_wait_s: float = 0.005):
        self.base_name = base
        self.max_tokens_cap = max_tokens_cap
        self.kinds: dict[str, str] = {}
        for name, path in adapters.items():
            kind = adapter_kind(path)
            if kind is None:
                raise _fail(f"adapter {name}: {path} is not an adapter directory (no adapter_config.json "
                            "or ftlang_adapter_config.json)",
                            "pass export/adapter of a run, or a registry version's adapter/")
            self.kinds[name] = kind
        types = {_peft_type(adapters[n]): n for n, k in self.kinds.items() if k != "bottleneck"}
        if len(types) > 1:  # PEFT keeps one method per model ("Cannot combine adapters with different peft types")
            listed = ", ".join(f"{n} ({t})" for t, n in types.items())
            raise _fail(f"adapters of different PEFT methods cannot share one base model: {listed}",
                        "serve each method from its own `ftlang serve` process (another --port); LoRA adapters "
                        "and ftlang bottleneck adapters can share one")
        model, tokenizer = _load_base(base)
        plain = model
        peft = [n for n in adapters if self.kinds[n] != "bottleneck"]
        if peft:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapters[peft[0]], adapter_name=peft[0])
            for name in peft[1:]:
                model.load_adapter(adapters[name], adapter_name=name)
        self.rows = None
        if any(k == "bottleneck" for k in self.kinds.values()):
            from ftlang.serve.bottleneck import RowAdapters

            self.rows = RowAdapters(plain)
            for name, kind in self.kinds.items():
                if kind == "bottleneck":
                    self.rows.add(name, adapters[name])
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model = model.to(device)
        self.model.eval()
        self.peft = bool(peft)
        self.tokenizer = tokenizer  # the HTTP side's (encoding); the engine decodes with its own copy
        self.worker_tokenizer = copy.deepcopy(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_id = tokenizer.eos_token_id
        self.context = int(getattr(plain.config, "max_position_embeddings", 0) or 0) or None
        self.adapters = dict(adapters)
        self.engine = Engine(self, max_batch=max_batch, batch_wait_s=batch_wait_s)

    def names(self) -> list[str]:
        return [BASE, *self.adapters]

    def can_share(self, a: str, b: str) -> bool:
        """Whether requests for models a and b can be rows of one generate call."""
        return a == b or (self.kinds.get(a, "lora") != "peft" and self.kinds.get(b, "lora") != "peft")

    @contextlib.contextmanager
    def selecting(self, names: list[str]) -> Iterator[dict]:
        """Route each row of the next generate to its model; yields extra generate kwargs."""
        if self.rows is not None:
            self.rows.rows = {}
            for i, n in enumerate(names):
                if self.kinds.get(n) == "bottleneck":
                    self.rows.rows.setdefault(n, []).append(i)
        try:
            if not self.peft:
                yield {}
            elif self.kinds.get(names[0]) == "peft":  # the batch is all this one adapter
                self.model.set_adapter(names[0])
                yield {}
            elif any(self.kinds.get(n) == "lora" for n in names):
                yield {"adapter_names": [n if self.kinds.get(n) == "lora" else PEFT_BASE for n in names]}
            else:  # base and bottleneck rows only
                with self.model.disable_adapter():
                    yield {}
        finally:
            if self.rows is not None:
                self.rows.rows = {}

    def render_chat(self, messages: list[dict]) -> str:
        from ftlang.backend.metrics import render_prompt

        return render_prompt(self.tokenizer, messages)

    def encode(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def complete(self, name: str, prompt: str, max_tokens: int = 64, **gen: Any) -> Completion:
        """Blocking generation through the engine (scripts and tests; the server is asynchronous)."""
        import threading

        done: list[Any] = []
        event = threading.Event()

        def emit(kind: str, value: Any) -> None:
            if kind != "delta":
                done.append(value)
                event.set()

        self.engine.submit(Request(name, self.encode(prompt), max_tokens, emit, **gen))
        event.wait()
        if isinstance(done[0], Exception):
            raise done[0]
        return done[0]

    def describe(self) -> str:
        return json.dumps({"base": self.base_name, "adapters": self.adapters})
