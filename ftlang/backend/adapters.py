"""Bottleneck adapter layers (Houlsby / Pfeiffer style) as a small PEFT-style module of ftlang's own.

Each adapter is `x + up(act(down(x)))` with `up` zero-initialized, so an untrained adapter is the
identity. It is attached as a child (`ftlang_adapter`) of the layer's attention and/or FFN block and
applied by a forward hook to that block's output: the base model's parameter names stay unchanged,
and only `*.ftlang_adapter.*` tensors are trainable, saved and loaded. Merging is refused: an
adapter is a non-linear extra layer, not a weight delta.

Saved layout (like PEFT's): `adapter_model.safetensors` + `ftlang_adapter_config.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftlang.atomic import write_json
from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan

CONFIG_NAME = "ftlang_adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
CHILD = "ftlang_adapter"

_ATTENTION_NAMES = ("self_attn", "attention", "attn", "self_attention")
_FFN_NAMES = ("mlp", "feed_forward", "ffn", "output")


@dataclass(frozen=True)
class AdapterConfig:
    bottleneck: int = 64
    placement: list[str] = field(default_factory=lambda: ["attention", "ffn"])
    dropout: float = 0.0
    activation: str = "relu"
    hidden: int | None = None  # filled from the model config on injection

    @classmethod
    def from_plan(cls, plan: Plan) -> AdapterConfig:
        m = plan.method
        return cls(bottleneck=m.bottleneck, placement=list(m.placement), dropout=m.dropout,
                   activation=m.activation, hidden=plan.model.hidden)


def _module_classes():
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, hidden: int, bottleneck: int, dropout: float, activation: str):
            super().__init__()
            self.down = nn.Linear(hidden, bottleneck)
            self.act = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[activation]()
            self.drop = nn.Dropout(dropout)
            self.up = nn.Linear(bottleneck, hidden)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.up(self.drop(self.act(self.down(x.to(self.down.weight.dtype)))))
            return x + h.to(x.dtype)

    return Bottleneck


def _hook(module: Any, inputs: Any, output: Any) -> Any:
    adapter = getattr(module, CHILD)
    if isinstance(output, tuple):
        return (adapter(output[0]), *output[1:])
    if hasattr(output, "last_hidden_state"):  # a ModelOutput
        output.last_hidden_state = adapter(output.last_hidden_state)
        return output
    return adapter(output)


def _layer_list(model: Any) -> Any:
    """The transformer blocks: the longest ModuleList of length num_hidden_layers."""
    from torch import nn

    n = getattr(model.config, "num_hidden_layers", None)
    best = None
    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0 and (n is None or len(mod) == n):
            if best is None or len(mod) > len(best):
                best = mod
    return best


def _child(layer: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        if hasattr(layer, name):
            return getattr(layer, name)
    return None


def adapter_sites(model: Any, placement: list[str]) -> list[tuple[str, Any]]:
    """(qualified name, module) of every block an adapter attaches to."""
    layers = _layer_list(model)
    if layers is None:
        raise DiagnosticError(error("FT713", "adapter: cannot find the model's transformer layers", None,
                                    help="adapter layers support Llama-, BERT- and GPT-style models; use lora"))
    names = {id(m): n for n, m in model.named_modules()}
    sites = []
    for layer in layers:
        for place in placement:
            block = _child(layer, _ATTENTION_NAMES if place == "attention" else _FFN_NAMES)
            if block is None:
                raise DiagnosticError(error(
                    "FT713", f"adapter: layer {type(layer).__name__} has no {place} block", None,
                    help="use placement = [attention] or [ffn], or method lora",
                ))
            sites.append((names[id(block)], block))
    return sites


def inject_adapters(model: Any, config: AdapterConfig) -> Any:
    """Freeze the base model and attach trainable bottleneck adapters; returns the same model."""
    bottleneck_cls = _module_classes()
    hidden = config.hidden or model.config.hidden_size
    if config.hidden != hidden:
        config = AdapterConfig(**{**asdict(config), "hidden": hidden})
    for p in model.parameters():
        p.requires_grad_(False)
    device = next(model.parameters()).device
    for _, block in adapter_sites(model, config.placement):
        adapter = bottleneck_cls(hidden, config.bottleneck, config.dropout, config.activation).to(device)
        block.add_module(CHILD, adapter)
        block.register_forward_hook(_hook)
    model.ftlang_adapter_config = config
    model.merge_and_unload = _refuse_merge  # like PEFT's API, so export code can ask uniformly
    return model


def _refuse_merge(*args: Any, **kwargs: Any) -> Any:
    raise merge_refused()


def adapter_state_dict(model: Any) -> dict[str, Any]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if f".{CHILD}." in k}


def save_adapter(model: Any, out_dir: str | Path) -> None:
    """Write the adapter weights (safetensors) and config; files land under temp names first."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (WEIGHTS_NAME + ".tmp")
    save_file(adapter_state_dict(model), str(tmp), metadata={"format": "pt", "ftlang": "adapter"})
    os.replace(tmp, out / WEIGHTS_NAME)
    write_json(out / CONFIG_NAME, asdict(model.ftlang_adapter_config))


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file()


def load_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """Attach the saved adapters to a freshly loaded base model and load their weights."""
    from safetensors.torch import load_file

    d = Path(adapter_dir)
    config = AdapterConfig(**json.loads((d / CONFIG_NAME).read_text()))
    inject_adapters(model, config)
    weights = load_file(str(d / WEIGHTS_NAME))
    own = adapter_state_dict(model)
    if set(weights) != set(own):
        raise DiagnosticError(error(
            "FT710", f"the adapter in {d} does not fit this base model "
            f"({len(set(weights) ^ set(own))} tensors differ)", None,
            help="load it onto the base model it was trained on",
        ))
    model.load_state_dict(weights, strict=False)
    return model


def merge_refused() -> DiagnosticError:
    return DiagnosticError(error(
        "FT302", "bottleneck adapters cannot be merged into the base weights", None,
        help="export with merge = false (ship the adapter beside the base), or train with lora/ia3",
    ))
