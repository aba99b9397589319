"""`ftlang import`: Axolotl, LLaMA-Factory and torchtune configs as `.ft` recipes.

    detect(cfg) -> tool | None              which tool wrote a parsed config (from its keys)
    convert(cfg, tool, origin, name, base) -> Draft   the recipe, with every key mapped or noted
    TOOLS                                    tool name → its module (SIGNATURE, convert)

One module per tool reads its config into a Draft (importers/common.py); importers/write.py renders it.
Torch-free; the YAML is parsed by the caller (commands/import_.py).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from ftlang.importers import axolotl, llamafactory, torchtune
from ftlang.importers.common import Draft

TOOLS: dict[str, ModuleType] = {m.TOOL: m for m in (axolotl, llamafactory, torchtune)}


def detect(cfg: dict) -> str | None:
    """The tool whose signature keys the config has most of (torchtune: `_component_` builders)."""
    if any(isinstance(v, dict) and "_component_" in v for v in cfg.values()):
        return torchtune.TOOL
    scores = {name: sum(k in cfg for k in m.SIGNATURE) for name, m in TOOLS.items() if name != torchtune.TOOL}
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] else None


def convert(cfg: dict, tool: str, origin: str, name: str, base: Path = Path(".")) -> Draft:
    """`base`: the config's folder (LLaMA-Factory's dataset_info.json is looked up from it)."""
    d = Draft(tool=TOOLS[tool].LABEL, name=name, origin=origin, base=base)
    TOOLS[tool].convert(cfg, d)
    d.finish()
    return d
