"""The prepared-data cache: a key over everything that changes the tokens, entries as safetensors + JSON.

Key = sha256 over: the cache format version, every source's spec and the sha256 of its bytes (hf: name,
revision and dataset fingerprint), every pipeline step, the split, the tokenizer identity (name_or_path,
class, vocab hash, special tokens, chat template), the template, train_on, max_seq_len, packing, the
task, and the files of local augmentation models. An entry is a directory written under a temporary name and renamed into place: never half written.
No pickle: token lists are flat int arrays with row offsets in one safetensors file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ftlang.atomic import write_lines
from ftlang.plan import Plan, _strip

FORMAT_VERSION = "ftlang-data-1"


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
            for op in step.args.get("ops", []) if step.op == "augment" else []:
                for ref in (op.get("via"), op.get("model"), op.get("back")):
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


# ---------------------------------------------------------------------------- rows ⇄ flat arrays


def _flatten(name: str, rows: list[dict], out: dict[str, np.ndarray], skip: frozenset = frozenset()) -> list[str]:
    keys = sorted(k for k in rows[0] if k not in skip) if rows else []
    out[f"{name}/__count"] = np.asarray([len(rows)], dtype=np.int64)
    for k in keys:
        first = rows[0][k]
        if isinstance(first, (list, tuple)):
            lens = np.fromiter((len(r[k]) for r in rows), dtype=np.int64, count=len(rows))
            flat = np.fromiter(chain.from_iterable(r[k] for r in rows), dtype=np.int64, count=int(lens.sum()))
            out[f"{name}/{k}"] = flat.astype(np.int32) if flat.size == 0 or abs(flat).max() < 2**31 else flat
            out[f"{name}/{k}.lens"] = lens
        else:
            out[f"{name}/{k}"] = np.asarray([r[k] for r in rows], dtype=np.int64)
    return keys


class FlatRows(Sequence):
    """Tokenized rows read back from a cache entry: flat arrays, a row materialized (as a dict of
    lists) only when it is accessed, so a cache hit costs the file read, not a Python list per token.
    Compares equal to a list of the same dicts."""

    def __init__(self, count: int, columns: dict[str, tuple[np.ndarray, np.ndarray | None]],
                 ones: frozenset = frozenset()):
        self._count = count
        self._columns = columns  # key → (values, row offsets or None for one value per row)
        self._ones = ones  # keys rebuilt as [1] * len(input_ids), e.g. attention_mask

    def __len__(self) -> int:
        return self._count

    def _row(self, i: int) -> dict:
        row: dict[str, Any] = {}
        for k, (values, offs) in self._columns.items():
            row[k] = values[offs[i]:offs[i + 1]].tolist() if offs is not None else values[i].item()
        for k in self._ones:
            row[k] = [1] * len(row["input_ids"])
        return row

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(self._count))]
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(i)
        return self._row(i)

    def __eq__(self, other) -> bool:
        if not isinstance(other, (list, tuple, FlatRows)) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FlatRows({self._count} rows, keys {sorted(self._columns) + sorted(self._ones)})"


def _unflatten(name: str, keys: list[str], arrays: dict[str, np.ndarray], ones: frozenset = frozenset()) -> FlatRows:
    count = int(arrays[f"{name}/__count"][0])
    columns: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for k in keys:
        lens = arrays.get(f"{name}/{k}.lens")
        offs = np.concatenate([[0], np.cumsum(lens)]) if lens is not None else None
        columns[k] = (arrays[f"{name}/{k}"], offs)
    return FlatRows(count, columns, ones if "input_ids" in keys and "position_ids" not in keys else frozenset())


def store(cache_dir: Path, key: str, tables: dict[str, list[dict]], meta: dict[str, Any],
          quarantine: list[dict], skip: frozenset = frozenset()) -> Path:
    """Write an entry; `skip` names row keys not stored (rebuilt on load, e.g. attention_mask)."""
    from safetensors.numpy import save_file

    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / key
    tmp = cache_dir / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    arrays: dict[str, np.ndarray] = {}
    layout = {name: _flatten(name, rows, arrays, skip) for name, rows in tables.items()}
    save_file(arrays, str(tmp / "tokens.safetensors"))
    (tmp / "meta.json").write_text(json.dumps({**meta, "layout": layout}, ensure_ascii=False), encoding="utf-8")
    if quarantine:
        write_quarantine(tmp / "quarantine.jsonl", quarantine)
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:  # another process stored the same key first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load(cache_dir: Path, key: str, ones: frozenset = frozenset()) -> tuple[dict[str, FlatRows], dict[str, Any]] | None:
    """An entry's tables (lazy FlatRows; `ones` names the keys store() skipped, rebuilt as [1] * n)."""
    entry = cache_dir / key
    if not (entry / "meta.json").is_file() or not (entry / "tokens.safetensors").is_file():
        return None
    from safetensors.numpy import load_file

    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        arrays = load_file(str(entry / "tokens.safetensors"))
        tables = {name: _unflatten(name, keys, arrays, ones) for name, keys in meta.pop("layout").items()}
    except (OSError, ValueError, KeyError):  # a damaged entry is a miss, then overwritten
        return None
    return tables, meta


def write_quarantine(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_lines(path, rows, ensure_ascii=False)
