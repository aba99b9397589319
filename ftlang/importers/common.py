"""The recipe an importer fills in, and how it becomes formatted `.ft` text.

An importer reads a foreign config into a `Draft`: every key of the config either goes into the draft
(`put` for the keys the alias table renames, or the importer's own handling for models, datasets and
methods, recorded with `done`) or becomes a `# not imported: key: value — why` line (`skip`). Key names,
blocks, types and ranges come from the plan's declaration (semantic/schema.py) and foreign names from
the one alias table (semantic/aliases.py); nothing here lists keys of its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlang.semantic import aliases
from ftlang.semantic.schema import KeySchema, keys

NO_EQUIVALENT = "ftlang has no equivalent setting"
# where a key the alias table renames lives in the recipe; a method key's block depends on the method
_BLOCKS = ("train", "early_stop", "hardware", "eval", "export")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_WORDS = frozenset({"true", "false", "and", "or", "not", "forgetting"})  # the grammar's reserved words
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Source:
    name: str
    call: str  # `jsonl("data/x.jsonl")`, `hf_dataset("org/name", split = "train")`
    format: str = "instruction"
    fields: dict[str, Any] = field(default_factory=dict)  # canonical field → the file's column (quoted on output)


@dataclass
class Draft:
    tool: str
    name: str  # the recipe's name
    origin: str  # the config file, for the header
    base: Path = Path(".")  # the config's folder
    notes: list[str] = field(default_factory=list)  # `key: value — why`
    todo: list[str] = field(default_factory=list)  # what the user fills in before the recipe runs
    handled: set[str] = field(default_factory=set)  # keys expressed in the recipe or noted
    skipped: set[str] = field(default_factory=set)  # keys noted as not imported
    imports: list[str] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)  # model_card texts written into the recipe
    model: str = ""
    sources: list[Source] = field(default_factory=list)
    train_data: str | None = None
    validation_data: str | None = None
    split: str | None = None  # `5%`
    steps: dict[str, list[str]] = field(default_factory=dict)  # role → pipeline steps after its first source
    head: int | None = None  # keep the first N rows of each source (LLaMA-Factory's max_samples)
    method: str = "full"
    blocks: dict[str, dict[str, str]] = field(default_factory=dict)  # block → key → value text

    # ---- recording
    def done(self, *names: str) -> None:
        self.handled.update(names)

    def skip(self, name: str, value: Any, why: str | None = None) -> None:
        """`name` is not expressible: a comment at the top of the recipe says so, and why."""
        if why is None:
            alias = aliases.lookup(name.rsplit(".", 1)[-1])
            why = alias.fix if alias is not None and alias.to is None and alias.fix else NO_EQUIVALENT
        self.notes.append(f"{name}: {_show(value)} — {why}")
        self.handled.add(name)
        self.skipped.add(name)

    def set(self, block: str, key: str, text: str) -> None:
        self.blocks.setdefault(block, {})[key] = text

    def finish(self) -> None:
        """Settings that conflict once renamed: a step limit overrides the epoch count (as in transformers and
        torchtune), and a recipe sets one of the two."""
        train = self.blocks.get("train", {})
        if "max_steps" in train and "epochs" in train:
            self.notes.append(f"epochs: {train.pop('epochs')} — the step limit (`max_steps = {train['max_steps']}`) "
                              "decides the length")

    def method_block(self) -> str:
        return f"method.{self.method}"

    # ---- the generic mapping: a foreign key renamed by the alias table (or already ftlang's name)
    def put(self, name: str, value: Any, *, leaf: str | None = None) -> bool:
        """Map `name` (its last dotted part, or `leaf`) through the alias table onto a recipe key, with its
        value checked against the key's declared type and range; False (and a comment) when it cannot be."""
        if value is None:  # an empty key is the tool's default
            self.done(name)
            return True
        foreign = leaf or name.rsplit(".", 1)[-1]
        alias = aliases.lookup(foreign)
        if alias is not None and alias.to is None:  # a setting the table says ftlang does otherwise
            self.skip(name, value, alias.fix)
            return False
        target = alias.to if alias is not None else foreign
        found = find_key(target, self.method_block())
        if found is None:
            self.skip(name, value)
            return False
        block, ks = found
        text, why = value_text(ks, value, foreign)
        if text is None:
            self.skip(name, value, why)
            return False
        self.set(block, ks.name, text)
        self.done(name)
        return True


def find_key(name: str, method_block: str) -> tuple[str, KeySchema] | None:
    """(block, key schema) of the recipe key `name` (`eval.batch`: in that block): the method's block first,
    then train, hardware, eval."""
    if "." in name:
        block, _, name = name.partition(".")
        return next(((block, ks) for ks in keys(block) if ks.name == name), None)
    for block in (method_block, "quant", *_BLOCKS):
        for ks in keys(block):
            if ks.name == name:
                return block, ks
    return None


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(str(text).split())
    return text if len(text) <= 120 else text[:117] + "..."


def number(v: float | int) -> str:
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e6:
        return str(int(v)) if isinstance(v, int) else f"{float(v):.1f}"
    if 0 < abs(v) < 1e-3:
        mant, exp = f"{v:.6e}".split("e")
        return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    return repr(float(v))


def percent(v: float) -> str:
    return f"{v * 100:.6g}%"


def quote(text: str) -> str:
    from ftlang.syntax.format import quote as q

    return q(text)


def word(value: Any) -> str:
    """A foreign enum word in ftlang's spelling (the alias table renames `bfloat16`, `adamw_torch`, ...)."""
    text = str(value).strip()
    alias = aliases.lookup(text)
    return alias.to if alias is not None and alias.to is not None else text


def names(value: Any) -> list[str]:
    """A list of names, or LLaMA-Factory's comma-separated string; [] for anything else (the caller notes it)."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        return []
    return [str(i).strip() for i in items if isinstance(i, (str, int)) and str(i).strip()]


def modules(value: Any) -> list[str]:
    """Target modules in ftlang's names (`output_proj` → `o_proj`, `all` → `all_linear`)."""
    return [word(n) for n in names(value)]


def _in_range(ks: KeySchema, v: float) -> bool:
    if ks.min is not None and (v < ks.min or (ks.min_open and v == ks.min)):
        return False
    return not (ks.max is not None and (v > ks.max or (ks.max_open and v == ks.max)))


def value_text(ks: KeySchema, value: Any, foreign: str) -> tuple[str | None, str]:
    """The recipe text of `value` for the key `ks`, or (None, why not)."""
    t = ks.type
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):  # YAML 1.1 reads `1e-4` as a string
        value = float(value) if any(c in value for c in ".eE") else int(value)
    if value is None:
        return None, "no value"
    if t == "bool":
        if isinstance(value, bool):
            return ("true" if value else "false"), ""
        return None, f"`{ks.name}` takes true or false"
    if t in ("int", "number", "fraction", "every"):
        if t == "every" and isinstance(value, str):
            return (value, "") if value in ("epoch", "end") else (None, "`every` is epoch, end or N steps")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"`{ks.name}` takes a number"
        if t == "every" and not float(value).is_integer():  # transformers: a share of all steps, not of an epoch
            return None, "a fraction of all training steps; ftlang's `every = 0.25` is a fraction of an epoch"
        if t == "int" and not float(value).is_integer():
            return None, f"`{ks.name}` takes a whole number"
        v = int(value) if t in ("int", "every") else value
        if not _in_range(ks, v):
            return None, f"out of range ({ks.range_text()})"
        return number(v), ""
    if t == "steps_or_ratio":  # warmup: a ratio becomes a percentage, a step count stays one
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, "warmup takes a ratio or a step count"
        if "ratio" in foreign or isinstance(value, float) and value < 1:
            return (percent(value), "") if 0 <= value < 1 else (None, "a warmup ratio is below 1")
        return (number(int(value)), "") if value >= 0 else (None, "negative warmup")
    if t == "enum":  # a word already valid stays (`bf16` is also a key alias: bf16 → precision)
        w = str(value) if str(value) in ks.enum else word(value)
        if w in ks.enum:
            return w, ""
        return None, f"`{ks.name}` is one of {', '.join(ks.enum)}"
    if t == "str":
        return quote(str(value)), ""
    if t == "name":
        w = word(value)
        return (w, "") if _IDENT.match(w) else (None, "not a name")
    if t == "ident_list":
        names = modules(value)
        if names == ["all_linear"]:
            return "all_linear", ""
        if not names:
            return None, "an empty list"
        return "[" + ", ".join(n if _IDENT.match(n) else quote(n) for n in names) + "]", ""  # tokens: "<|x|>"
    return None, NO_EQUIVALENT


def identifier(text: str, prefix: str = "r") -> str:
    """A recipe or source name made from a file or dataset name."""
    out = re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_").lower()
    if not out or not (out[0].isalpha() or out[0] == "_"):
        out = f"{prefix}_{out}"
    return f"{out}_{prefix}" if out in _WORDS else out


_FILE_KINDS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
#: torchtune / datasets loader names: the rows are in `data_files`, not on the hub
LOADERS = ("json", "csv", "parquet", "text", "arrow")


def data_call(path: str, split: str | None = None, files: str | None = None, *, config: str | None = None,
              revision: str | None = None) -> str:
    """A data source call: local files by extension, anything else a hub dataset (with its config / revision)."""
    target = files or path
    for ext, kind in _FILE_KINDS.items():
        if str(target).lower().endswith(ext):
            return f"{kind}({quote(str(target))})"
    args = [quote(path), f"split = {quote(split or 'train')}"]
    args += [f"{k} = {quote(str(v))}" for k, v in (("config", config), ("revision", revision)) if v]
    return f"hf_dataset({', '.join(args)})"


def add_source(d: Draft, source: Source, role: str, key: str, value: Any) -> None:
    """Declare a data source; the first of a role trains (or validates), later ones are appended in order
    (`| concat(NAME)`), as the tools concatenate their dataset lists."""
    taken = {s.name for s in d.sources}
    base, n = source.name, 2
    while source.name in taken:
        source.name, n = f"{base}_{n}", n + 1
    d.sources.append(source)
    attr = "train_data" if role == "train" else "validation_data"
    if getattr(d, attr) is None:
        setattr(d, attr, source.name)
    else:
        d.steps.setdefault(role, []).append(f"concat({source.name})")
    d.done(key)


def precision(d: Draft, key: str, value: Any) -> None:
    """`bf16: true` / `fp16: true` (Axolotl's `auto`: bf16 where the GPU has it) → `precision = …`; Axolotl's
    `bf16: full` and LLaMA-Factory's `pure_bf16: true` are bf16 without fp32 master weights."""
    if key == "pure_bf16" and value is True or key == "bf16" and value == "full":
        d.set("train", "precision", "bf16")
        d.set("train", "pure_bf16", "true")
        d.done(key)
    elif value is True or value == "auto":
        d.set("train", "precision", key)
        d.done(key)
    elif value in (False, None):
        d.done(key)
    else:
        d.skip(key, value, "precision is bf16, fp16 or fp32")


def multi_gpu(d: Draft) -> None:
    line = "set `hardware { count = … }` to the GPUs you launch on (the tool takes it from its launcher)"
    if line not in d.todo:
        d.todo.append(line)


def split_percent(d: Draft, key: str, value: Any) -> None:
    """A validation share (`val_set_size: 0.05`) → `split train { validation = 5% }`."""
    if not value:
        d.done(key)
    elif isinstance(value, (int, float)) and 0 < value < 1:
        d.split = percent(float(value))
        d.done(key)
    else:
        d.skip(key, value, "a split is a fraction of the rows (a row count is not expressible)")
