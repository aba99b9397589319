"""A local tokenizer folder's chat template, read from its plain files (no tokenizers or transformers import):
what `ftlang check` (FT224) and `check --data`'s light tokenizer (data/light_tokenizer.py) both read."""

from __future__ import annotations

import json
from pathlib import Path


def chat_template(folder: Path, config: dict) -> str | dict | None:
    """The folder's chat template as transformers resolves it: chat_template.jinja beside the config (v5 saves
    it there and prefers it), chat_template.json (older processors), else tokenizer_config.json's
    `chat_template` (`config`; a list of named templates becomes a dict)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    saved = folder / "chat_template.json"
    if saved.is_file():
        try:
            got = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            got = None
        if isinstance(got, dict) and got.get("chat_template"):
            return got["chat_template"]
    template = config.get("chat_template")
    if isinstance(template, list):  # several named templates
        template = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
    return template
