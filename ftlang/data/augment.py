"""`augment(...)`: nlpaug word/char augmenters and seq2seq back-translation / paraphrase.

Only the prompt side of a row is rewritten (instruction and input, user turns, or the text of
completion / classification rows): targets stay as written. Each copy is seeded from (seed, the row's
content hash, the copy number), so a rerun reproduces it whatever the row order. Copies are marked
`_meta.augmented` with the `origin` hash of their row: the split keeps them out of validation.
A copy identical to its row is not added (counted as `unchanged`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ftlang.data.formats import prompt_fields
from ftlang.data.rows import content_hash
from ftlang.diagnostics import DiagnosticError, error
from ftlang.source import loc_span

if TYPE_CHECKING:
    from ftlang.plan import Plan, StepPlan


class PipelineRunner(Protocol):
    """What augmentation needs of data/steps.py's runner (a protocol, so this module does not import it)."""

    plan: Plan
    models: dict  # augmentation models, loaded once per run
    log: Callable[[str], None]

LANGS = {"tr": "Turkish", "de": "German", "fr": "French", "es": "Spanish", "en": "English", "it": "Italian",
         "ro": "Romanian", "ru": "Russian", "zh": "Chinese", "ja": "Japanese"}


def _seed(*parts: object) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _first(out) -> str:
    if isinstance(out, list):
        return out[0] if out else ""
    return out or ""


def _nlpaug(op: dict) -> Callable[[str], str]:
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw

    p = float(op.get("p", 0.1))
    name = op["op"]
    if name == "synonyms":
        from ftlang.data.wordnet import STOPWORDS, pos_tag, wordnet

        wordnet()
        aug = naw.SynonymAug(aug_src="wordnet", aug_p=p, aug_min=1, stopwords=sorted(STOPWORDS))
        aug.model.pos_tag = pos_tag  # nltk's perceptron tagger cannot be downloaded here
    elif name in ("swap", "delete"):
        aug = naw.RandomWordAug(action=name, aug_p=p, aug_min=1)
    elif name == "char_noise":
        kind = str(op.get("kind", "keyboard"))
        aug = (nac.OcrAug if kind == "ocr" else nac.KeyboardAug)(aug_char_p=p, aug_word_p=max(p, 0.1), aug_char_min=1)
    else:
        raise KeyError(name)
    return lambda text: _first(aug.augment(text))


class Seq2Seq:
    """A seq2seq model loaded through transformers (AutoModelForSeq2SeqLM, safetensors only)."""

    def __init__(self, path: str):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(path, use_safetensors=True)
        self.model.eval()
        self.t5 = getattr(self.model.config, "model_type", "") in ("t5", "mt5", "umt5")

    def generate(self, texts: list[str], prefix: str = "", sample: bool = False, seed: int = 0,
                 max_new_tokens: int | None = None) -> list[str]:
        import torch

        inputs = [prefix + t if self.t5 else t for t in texts]
        enc = self.tokenizer(inputs, return_tensors="pt", padding=True, truncation=True, max_length=512)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(**enc, do_sample=sample, top_p=0.9 if sample else None, num_beams=1,
                                      min_new_tokens=1,
                                      max_new_tokens=max_new_tokens or min(256, 2 * enc["input_ids"].shape[1] + 8))
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def _model(runner: PipelineRunner, ref: str, step: StepPlan) -> Seq2Seq:
    local = runner.plan.resolve(ref)
    path = str(local) if local.exists() else ref
    if path not in runner.models:
        try:
            runner.models[path] = Seq2Seq(path)
        except Exception as e:  # noqa: BLE001 - hub/IO/config errors all mean "cannot load"
            raise DiagnosticError(error("FT623", f"cannot load the seq2seq model {ref!r}: {type(e).__name__}: {e}",
                                        loc_span(step.loc), "give a local model directory (safetensors) or a hub "
                                                            "id present in the local cache")) from None
    return runner.models[path]


Batch = Callable[[list[str], list[int]], list[str]]


def _seq2seq(runner: PipelineRunner, op: dict, step: StepPlan) -> Batch:
    limit = int(op["max_new_tokens"]) if op.get("max_new_tokens") else None
    if op["op"] == "back_translate":
        via = op.get("via") or op.get("model")
        if not via:
            raise DiagnosticError(error("FT623", "back_translate needs via = <model>", None))
        to = str(op.get("to", "de"))
        forward = _model(runner, str(via), step)
        back = _model(runner, str(op.get("back") or via), step)
        lang = LANGS.get(to, to)

        def translate(texts: list[str], seeds: list[int]) -> list[str]:
            there = _batched(forward, texts, f"translate English to {lang}: ", False, seeds, limit)
            return _batched(back, there, f"translate {lang} to English: ", False, seeds, limit)

        return translate
    ref = op.get("model") or op.get("via")
    if not ref:
        raise DiagnosticError(error("FT623", "paraphrase needs model = <model>", None))
    model = _model(runner, str(ref), step)
    return lambda texts, seeds: _batched(model, texts, "paraphrase: ", True, seeds, limit)


def _batched(model: Seq2Seq, texts: list[str], prefix: str, sample: bool, seeds: list[int],
             limit: int | None = None, size: int = 32) -> list[str]:
    out: list[str] = []
    for i in range(0, len(texts), size):
        out += model.generate(texts[i:i + size], prefix, sample=sample, seed=seeds[i] if seeds else 0,
                              max_new_tokens=limit)
    return out


def _per_text(f: Callable[[str], str]) -> Batch:
    import numpy as np

    def run(texts: list[str], seeds: list[int]) -> list[str]:
        out = []
        for text, s in zip(texts, seeds, strict=True):
            random.seed(s)  # nlpaug draws from the global generators
            np.random.seed(s % (2**32))
            out.append(f(text))
        return out

    return run


def augment_rows(runner: PipelineRunner, rows: list[dict], fmt: str, step: StepPlan) -> list[dict]:
    """The new (augmented) rows for `rows`; the caller appends them. Each op runs over every text at
    once (seq2seq models generate in batches)."""
    copies, seed = step.args.copies, step.args.seed
    fns: list[tuple[str, Batch]] = []
    for op in (o.model_dump() for o in step.args.ops):  # op dicts: absent options are left out
        if op["op"] in ("back_translate", "paraphrase"):
            fns.append((op["op"], _seq2seq(runner, op, step)))
            continue
        try:
            fns.append((op["op"], _per_text(_nlpaug(op))))
        except KeyError:
            raise DiagnosticError(error("FT623", f"unknown augmentation {op['op']!r}", None)) from None
        except Exception as e:  # noqa: BLE001 - WordNet / nlpaug resources missing
            raise DiagnosticError(error("FT623", f"augmentation {op['op']} cannot start: {e}", None)) from None
    made: list[tuple[dict, str, dict]] = []  # (copy, origin hash, meta of the row)
    jobs: list[tuple[dict, str, int | None, int]] = []  # (copy, field, message index, seed)
    texts: list[str] = []
    for row in rows:
        meta = row.get("_meta", {})
        if meta.get("augmented") or meta.get("mixed"):
            continue
        h = content_hash(row)
        for c in range(copies):
            new = {k: (list(map(dict, v)) if k == "messages" else v) for k, v in row.items()}
            made.append((new, h, {**meta, "augmented": True, "origin": h, "copy": c + 1,
                                  "ops": [name for name, _ in fns]}))
            for key, idx in prompt_fields(row, fmt):
                text = new["messages"][idx]["content"] if idx is not None else new.get(key)
                if text:
                    jobs.append((new, key, idx, _seed(seed, h, c, key, idx)))
                    texts.append(text)
    for k, (_, fn) in enumerate(fns):
        outs = fn(texts, [s + k for *_, s in jobs])
        texts = [o if o and o.strip() else t for o, t in zip(outs, texts, strict=True)]
    for (new, key, idx, _), text in zip(jobs, texts, strict=True):
        if idx is not None:
            new["messages"][idx]["content"] = text
        else:
            new[key] = text
    added = []
    for new, h, meta in made:
        if content_hash(new) != h:
            new["_meta"] = meta
            added.append(new)
    if len(added) < len(made):
        runner.log(f"data: augment: {len(made) - len(added)} copies came out identical to their row and were "
                   "not added")
    return added
