"""A temp project for the checker tests: the LANGUAGE.md corpus, its data files and a tiny-llama config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"

TINY_LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 400,
              "max_position_embeddings": 256, "tie_word_embeddings": False}

#: the line each must-be-rejected corpus file is rejected at (the text that line holds)
REJECTS = {
    "reject_data_model_source.ft": ("FT208", 'gguf("model.gguf")'),
    "reject_qlora_int8.ft": ("FT301", "type = int8"),
    "reject_target_typo.ft": ("FT209", "q_prj"),
    "reject_unknown_key.ft": ("FT101", "epocs"),
    "reject_gate_metric.ft": ("FT210", "gate rouge_l >= 0.3"),
}


def _jsonl(path: Path, rows: list[dict], copies: int = 1) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) * copies, encoding="utf-8")


def make_project(root: Path, rows: int = 1200) -> Path:
    """Write the corpus recipes and everything they reference under root (which gets a .git)."""
    (root / ".git").mkdir(parents=True, exist_ok=True)
    for f in CORPUS.glob("*.ft"):
        shutil.copy(f, root / f.name)
    (root / "models" / "tiny-llama").mkdir(parents=True, exist_ok=True)
    (root / "models" / "tiny-llama" / "config.json").write_text(json.dumps(TINY_LLAMA), encoding="utf-8")
    data = root / "data"
    data.mkdir(exist_ok=True)
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    _jsonl(data / "tickets.jsonl", [{"question": "q", "context": "c", "answer": "a"}], rows)
    _jsonl(data / "general_chat.jsonl", [chat], rows)
    _jsonl(data / "chat.jsonl", [chat], rows)
    _jsonl(data / "faq_train.jsonl", [{"question": "q", "answer": "a"}], rows)
    _jsonl(data / "faq_val.jsonl", [{"question": "q", "answer": "a"}], 20)
    _jsonl(data / "tickets_cls.jsonl", [{"text": "refund please", "label": "billing"}], rows)
    (data / "docs.csv").write_text("q,a\n" + "x,y\n" * rows, encoding="utf-8")
    return root


BASE = '''recipe base_lora {
  model = local("models/tiny-llama")
  data d = chat_jsonl("data/chat.jsonl")
  dataset train = d
  split train { validation = 10% }
  method lora { r = 8, alpha = 16, targets = [q_proj, v_proj] }
  train { lr = 2e-4, epochs = 1, batch = 2 }
  eval { metrics = [perplexity], gate perplexity < 100 }
}
'''


def variant(old: str, new: str, text: str = BASE) -> str:
    """BASE with the line that starts with `old` replaced by `new` (or `new` added after `data d`)."""
    out = []
    for line in text.splitlines():
        head = line.strip()
        if head.startswith(old + " ") or head.startswith(old + "{") or head == old:
            out.append("  " + new)
        else:
            out.append(line)
    return "\n".join(out) + "\n"
