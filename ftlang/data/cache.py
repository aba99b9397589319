"""The prepared-data cache: a key over everything that changes the tokens, entries as Arrow files + JSON.

Key = sha256 over: the cache format version, every source's spec and the sha256 of its bytes (hf: name,
revision and dataset fingerprint), every pipeline step, the split, the tokenizer identity (name_or_path,
class, vocab hash, special tokens, chat template), the template, train_on, max_seq_len, packing, the
task, and the files of local augmentation models. An entry is a directory written under a temporary name
and renamed into place: never half written. No pickle: tokenized tables are Arrow IPC files (tables.py),
read back memory-mapped; meta.json holds the stats and the file of each table.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ftlang.atomic import write_lines
from ftlang.plan import Plan, _strip

FORMAT_VERSION = "ftlang-data-2"  # 2: Arrow IPC tables


def tokenizer_identity(tokenizer) -> dict:
    vocab = tokenizer.get_vocab()
    blob = json.dumps(sorted(vocab.items(), key=lambda kv: kv[1]), ensure_ascii=False).encode("utf-8")
    template = getattr(tokenizer, "chat_template", None)
    return {
        "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
        "class": type(tokenizer).__name__,
        "vocab_sha256": hashlib.sha256(blob).hexdigest(),
        "special": {k: str(v) for k, v in sorted((getattr(tokenizer, "special_tokens_map", {}) or {}).items())},
        "chat_template_sha256": hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest(),
    }


def _model_stamps(plan: Plan) -> dict[str, list]:
    """Local augmentation models (back_translate / paraphrase): their files' names, sizes and mtimes,
    so replacing a model's weights misses the cache."""
    out: dict[str, list] = {}
    for pipe in plan.datasets.pipelines.values():
        for step in pipe.steps:
            for op in step.args.ops if step.op == "augment" else []:
                for ref in (op.via, op.model, op.back):
                    if not isinstance(ref, str) or ref in out:
                        continue
                    d = plan.resolve(ref)
                    if d.is_dir():
                        out[ref] = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                                          for f in d.iterdir() if f.is_file())
    return out


def cache_key(plan: Plan, fingerprints: dict[str, str], tokenizer_id: dict, template_digest: str | None) -> str:
    t = plan.train
    payload = {
        "version": FORMAT_VERSION,
        "sources": {n: {"spec": _strip(s.model_dump(mode="json")), "sha256": fingerprints.get(n)}
                    for n, s in sorted(plan.data.items())},
        "datasets": _strip(plan.datasets.model_dump(mode="json")),
        "forgetting_on": plan.eval.forgetting_on,
        "tokenizer": tokenizer_id,
        "template": [t.template, template_digest],
        "train_on": t.train_on,
        "max_seq_len": t.max_seq_len,
        "packing": t.packing,
        "task": plan.model.task.model_dump(mode="json"),
        "seed": t.seed,  # mix() draws with the train seed when it has none of its own
        "augment_models": _model_stamps(plan),
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- entries


def begin(cache_dir: Path, key: str) -> Path:
    """A fresh temporary entry directory; the data stage writes its tables into it, then commit()."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def commit(tmp: Path, cache_dir: Path, key: str, meta: dict[str, Any], quarantine: list[dict]) -> Path:
    """Finish an entry (meta.json, quarantine.jsonl) and rename it into place, never half written."""
    (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    if quarantine:
        write_quarantine(tmp / "quarantine.jsonl", quarantine)
    final = cache_dir / key
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:  # another process stored the same key first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load(cache_dir: Path, key: str) -> tuple[dict[str, Any], Path] | None:
    """An entry's meta and directory, or None (missing or damaged: a miss, then overwritten)."""
    entry = cache_dir / key
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not all((entry / f).is_file() for f in meta.get("files", {}).values()):
        return None
    return meta, entry


def write_quarantine(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_lines(path, rows, ensure_ascii=False)
