"""docs/migrating.md's key-by-key tables, generated from what `ftlang import` itself uses: each importer's
HANDLED keys, the alias table (semantic/aliases.py) and the plan's key declarations (semantic/schema.py)."""

from __future__ import annotations

from ftlang.importers import TOOLS
from ftlang.importers.common import find_key
from ftlang.semantic import aliases

_BLOCK_NAMES = {"early_stop": "train { early_stop { … } }", "quant": "method qlora { quant { … } }"}


def _where(alias: aliases.Alias) -> str:
    """`lora_r` → "`method { r }`"; a value alias → "the value `all_linear`"."""
    found = find_key(alias.to, "method.lora") or find_key(alias.to, "method.qlora")
    if found is None:
        return f"the value `{alias.to}`"
    block, ks = found
    block = _BLOCK_NAMES.get(block, "method" if block.startswith("method.") else block)
    return f"`{block} {{ {ks.name} }}`" if "{ … }" not in block else f"`{block.replace('…', ks.name)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def tool_table(tool: str) -> str:
    module = TOOLS[tool]
    rows = [f"| `{k}` | {_cell(v)} |" for k, v in module.HANDLED.items()]
    renamed, noted = [], []
    for a in aliases.ALIASES:
        if module.LABEL not in a.tools or a.name in module.HANDLED:
            continue
        if a.to is not None:
            renamed.append(f"| `{a.name}` | {_where(a)} |")
        else:
            noted.append(f"| `{a.name}` | not imported: {_cell(a.fix or '')} |")
    head = ["| key (or value) | in ftlang |", "|---|---|"]
    return "\n".join(head + rows + renamed + noted)


def markdown() -> str:
    parts = []
    for tool, module in TOOLS.items():
        parts += [f"### {module.LABEL}", "", tool_table(tool), ""]
    return "\n".join(parts)
