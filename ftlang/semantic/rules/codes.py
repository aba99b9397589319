"""Explain texts for the codes that the resolver, the type checker and the binder report directly."""

from __future__ import annotations

from ftlang.semantic.rules import document

document("FT101", "unknown key", """
Every key is known for its block; a key the block does not define is an error, never silently
ignored (a typo such as `epocs = 3` would otherwise train with the default). The message suggests
the closest known key. `ftlang explain` of the block's schema: see docs/language.md.""")
document("FT102", "wrong type", """
The value does not have the key's type: e.g. `batch = "4"` (a string where an integer is expected)
or `lr = 1%`. Numbers, percentages (10%), sizes (24GB), booleans, names and strings are distinct.""")
document("FT103", "value out of range", """
The value has the right type but lies outside the key's range, e.g. `r = 0` (r ≥ 1) or
`dropout = 1.5` (0 ≤ dropout < 1). The help line states the allowed range.""")
document("FT104", "unknown choice", """
The key takes one of a fixed set of words (an enum): e.g. `schedule = cosine`, `precision = bf16`.
The message lists the choices and suggests the nearest one.""")
document("FT105", "missing required setting", """
A block lacks a setting it cannot do without: a recipe needs `model` and a `method` block; a split
needs `validation`; mix(...) needs `ratio`.""")
document("FT106", "statement not allowed here", """
A block or statement appears where it has no meaning: e.g. a `gate` outside `eval`, or an unknown
nested block. The message suggests where it belongs.""")
document("FT107", "set twice", """
The same key or block appears twice at the same level; which one wins would be a guess, so it is
an error. Remove or merge one of them.""")
document("FT108", "unknown source, step or augmentation", """
A call names no known data source (jsonl, json, csv, parquet, chat_jsonl, hf_dataset), pipeline step
(dedupe, filter, to_chat, to_instruction, to_completion, augment, mix, sample) or augmentation.""")
document("FT109", "unknown argument", """
A call got a keyword argument it does not take (`to_chat(sytem = "...")`), or more positional
arguments than it takes. Nothing is ignored silently: the message suggests the nearest argument.""")
document("FT201", "undefined name", """
A name used as a value is not defined: a param, a model card, a data source or dataset, a
function in a filter, a row field. The error sits at the use; the help suggests the closest name or
the import that defines it.""")
document("FT202", "defined twice", """
A recipe, model card, param, data source or dataset name is defined a second time (also across
imported files). The error is at the second definition; the first is named in a note.""")
document("FT203", "path does not exist", """
A data file or local model folder does not exist. Paths are relative to the file that writes them.
`hf(...)` ids, `hf_dataset(...)` and files inside Python packages are not looked up by `check`.""")
document("FT204", "path escapes the project root", """
Data, model, registry and import paths must stay inside the project root: the nearest folder,
upwards from the recipe, that holds `.git` or `pyproject.toml`. This keeps a recipe reproducible
from a clone and stops a recipe from reading arbitrary files.""")
document("FT205", "import cycle", """
Two files import each other (directly or through others). Move the shared definitions into a
third file that both import. The error is at the import that closes the cycle.""")
document("FT206", "imported file not found", """
An `import "path.ft"` names a file that does not exist. Paths are relative to the importing file;
`"stdlib/..."` names the standard library shipped with ftlang (stdlib/models/<family>.ft).""")
document("FT207", "unknown --set param", """
`--set NAME=VALUE` names no `param` of the recipe. Declare it with `param NAME = default` and use
it as a value (`lr = lr`).""")
document("FT208", "a model source where a data source is expected (or the reverse)", """
`data d = gguf("model.gguf")` uses a model source as data. Data comes from jsonl, json, csv,
parquet, chat_jsonl or hf_dataset; models go in `model = ...` (hf, local, gguf, or a card).""")
document("FT221", "unusable path", """
A path in the recipe (an import, a data file, a model folder, a registry) cannot be used as
written: it holds a NUL byte, a name is longer than the file system allows (255 bytes on most),
it is a loop of symbolic links, it cannot be read, or it names a directory where a file is expected
(or a file where a directory is). The help says which.""")
document("FT211", "bad extends", """
`recipe child extends parent` names no recipe, or the chain of parents loops back.""")
document("FT212", "no model card", """
The checker needs the model's dimensions for its rules and the resource estimate. A stdlib card
(`import "stdlib/models/llama2.ft"`, `model = llama2_7b`), a `model_card` block, or `local("dir")`
with a transformers config.json all provide them; a bare hub id is matched against the known cards
and the local Hugging Face cache, never the network.""")
document("FT213", "unknown GPU", """
`hardware { gpu = "..." }` names a GPU that is not in the hardware catalog (stdlib/hardware.json:
T4-16GB, L4-24GB, RTX4090-24GB, A10-24GB, A100-40GB, A100-80GB, H100-80GB, H200-141GB). Give
`memory = 24GB` for another device.""")
document("FT214", "dataset cycle", """
A dataset pipeline starts from itself, directly or through other datasets.""")
document("FT999", "internal error in a rule", """
A rule raised an exception: a bug in ftlang. The other diagnostics are still shown.""")
