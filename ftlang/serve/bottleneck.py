"""ftlang's bottleneck adapters in a serving batch: several named adapters on one base, chosen per row.

Training attaches one adapter per block (backend/adapters.py). A server holds many, so each block
gets a ModuleDict of them and one forward hook that runs each adapter on its own rows of the batch
(the rows the engine assigned before `generate`); rows of other models pass through unchanged. LoRA
rows in the same batch are handled by PEFT, so bottleneck, LoRA and base requests share one pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftlang.backend import adapters as bn
from ftlang.diagnostics import DiagnosticError, error

SLOT = "ftlang_serve_adapters"


class RowAdapters:
    def __init__(self, model: Any):
        self.model = model  # the plain transformers model (under PEFT's wrapper, if any)
        self.keys: dict[str, str] = {}  # adapter name → ModuleDict key (names may hold dots)
        self.rows: dict[str, list[int]] = {}  # set by the engine for the batch being generated

    def add(self, name: str, adapter_dir: str | Path) -> None:
        import torch
        from safetensors.torch import load_file
        from torch import nn

        d = Path(adapter_dir)
        config = bn.AdapterConfig(**json.loads((d / bn.CONFIG_NAME).read_text()))
        weights = load_file(str(d / bn.WEIGHTS_NAME))
        key = self.keys.setdefault(name, f"a{len(self.keys)}")
        bottleneck_cls = bn._module_classes()
        hidden = config.hidden or self.model.config.hidden_size
        used = 0
        for site, block in bn.adapter_sites(self.model, config.placement):
            prefix = f"{site}.{bn.CHILD}."
            state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            module = bottleneck_cls(hidden, config.bottleneck, 0.0, config.activation)
            try:
                module.load_state_dict(state)
            except RuntimeError as e:
                raise _misfit(name, d, str(e).splitlines()[0]) from None
            used += len(state)
            if not hasattr(block, SLOT):
                block.add_module(SLOT, nn.ModuleDict())
                block.register_forward_hook(self._hook)
            dtype = next(block.parameters()).dtype if any(True for _ in block.parameters()) else torch.float32
            getattr(block, SLOT)[key] = module.to(dtype).eval()
        if used != len(weights):
            raise _misfit(name, d, f"{len(weights) - used} tensors match no layer")

    def _hook(self, module: Any, inputs: Any, output: Any) -> Any:
        if not self.rows:
            return output
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        for name, idx in self.rows.items():
            hidden[idx] = getattr(module, SLOT)[self.keys[name]](hidden[idx])
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _misfit(name: str, d: Path, why: str) -> DiagnosticError:
    return DiagnosticError(error("FT840", f"adapter {name}: the bottleneck adapter in {d} does not fit this base "
                                 f"model ({why})", None, help="serve it with the base model it was trained on"))
