"""The resolver's, the type checker's and the binder's codes (FT1xx, FT2xx), and the install's and internal
errors (FT9xx)."""

from __future__ import annotations

from ftlang.codes.model import Code, Stage

CODES: tuple[Code, ...] = (
    Code("FT101", Stage.CHECK, "unknown key",
         "Every key is known for its block; a key the block does not define is an error, never silently "
         "ignored (a typo such as `epocs = 3` would otherwise train with the default). The message suggests "
         "the closest known key. `ftlang explain` of the block's schema: see docs/language.md."),
    Code("FT102", Stage.CHECK, "wrong type",
         "The value does not have the key's type: e.g. `batch = \"4\"` (a string where an integer is expected) "
         "or `lr = 1%`. Numbers, percentages (10%), sizes (24GB), booleans, names and strings are distinct."),
    Code("FT103", Stage.CHECK, "value out of range",
         "The value has the right type but lies outside the key's range, e.g. `r = 0` (r ≥ 1) or `dropout = "
         "1.5` (0 ≤ dropout < 1). The help line states the allowed range."),
    Code("FT104", Stage.CHECK, "unknown choice",
         "The key takes one of a fixed set of words (an enum): e.g. `schedule = cosine`, `precision = bf16`. "
         "The message lists the choices and suggests the nearest one."),
    Code("FT105", Stage.CHECK, "missing required setting",
         "A block lacks a setting it cannot do without: a recipe needs `model` and a `method` block; a split "
         "needs `validation` or `first`; mix(...) needs `ratio`."),
    Code("FT106", Stage.CHECK, "statement not allowed here",
         "A block or statement appears where it has no meaning: e.g. a `gate` outside `eval`, or an unknown "
         "nested block. The message suggests where it belongs."),
    Code("FT107", Stage.CHECK, "set twice",
         "The same key or block appears twice at the same level; which one wins would be a guess, so it is an "
         "error. Remove or merge one of them."),
    Code("FT108", Stage.CHECK, "unknown source, step or augmentation",
         "A call names no known data source (jsonl, json, csv, parquet, chat_jsonl, hf_dataset), pipeline step "
         "(dedupe, filter, to_chat, to_instruction, to_completion, augment, mix, sample) or augmentation."),
    Code("FT109", Stage.CHECK, "unknown argument",
         "A call got a keyword argument it does not take (`to_chat(sytem = \"...\")`), or more positional "
         "arguments than it takes. Nothing is ignored silently: the message suggests the nearest argument."),
    Code("FT110", Stage.CHECK, "bad model source",
         "A model source lacks what it needs, or the value is not a model source: `hf(\"org/name\")` takes the "
         "hub id as a string, `local(\"dir\")` a directory, `gguf(\"model.gguf\")` a file path (or "
         "`package = ...` with `file = \"name.gguf\"`), `local_package(...)` the package name."),
    Code("FT111", Stage.CHECK, "bad data source",
         "A data source lacks its path or id: `jsonl(\"data/train.jsonl\")` (and json, csv, parquet, "
         "chat_jsonl) takes the file path as a string, `hf_dataset(\"org/name\")` the dataset id."),
    Code("FT112", Stage.CHECK, "bad skip limit",
         "`on_error = skip(max = N)` takes a row count (`skip(max = 20)`) or a percentage of the rows read "
         "(`skip(max = 1%)`)."),
    Code("FT113", Stage.CHECK, "not a filter condition",
         "`filter(...)` takes exactly one condition built from comparisons, `and`, `or`, `not`, the row's "
         "fields, literals and the filter functions, e.g. `filter(len(output) > 0 and not (input == \"\"))`."),
    Code("FT114", Stage.CHECK, "pipeline step lacks its argument",
         "`augment(...)` needs at least one augmentation (`augment(synonym(p = 10%))`); `mix(...)` needs the "
         "name of the data source or dataset to mix in (`mix(general, ratio = 20%)`)."),
    Code("FT115", Stage.CHECK, "classify needs labels",
         "`task = classify(labels = [billing, bug, other])` needs at least two distinct labels."),
    Code("FT116", Stage.CHECK, "bad prompt-tuning init",
         "Prompt tuning's `init` is `random` or `text(\"...\")`, the text whose tokens initialise the virtual "
         "tokens."),
    Code("FT117", Stage.CHECK, "value refused by the plan",
         "A value passed the key's own checks but the plan refuses it (the message names the plan field and "
         "the reason). `ftlang schema` prints the plan's fields and their constraints."),
    Code("FT201", Stage.CHECK, "undefined name",
         "A name used as a value is not defined: a param, a model card, a data source or dataset, a function "
         "in a filter, a row field. The error sits at the use; the help suggests the closest name or the "
         "import that defines it."),
    Code("FT202", Stage.CHECK, "defined twice",
         "A recipe, model card, param, data source or dataset name is defined a second time (also across "
         "imported files). The error is at the second definition; the first is named in a note."),
    Code("FT203", Stage.CHECK, "path does not exist",
         "A data file or local model folder does not exist. Paths are relative to the file that writes them. "
         "`hf(...)` ids, `hf_dataset(...)` and files inside Python packages are not looked up by `check`."),
    Code("FT204", Stage.CHECK, "path escapes the project root",
         "Data, model, registry and import paths must stay inside the project root: the nearest folder, "
         "upwards from the recipe, that holds `.git` or `pyproject.toml`. This keeps a recipe reproducible "
         "from a clone and stops a recipe from reading arbitrary files."),
    Code("FT205", Stage.RESOLVE, "import cycle",
         "Two files import each other (directly or through others). Move the shared definitions into a third "
         "file that both import. The error is at the import that closes the cycle."),
    Code("FT206", Stage.RESOLVE, "imported file not found",
         "An `import \"path.ft\"` names a file that does not exist. Paths are relative to the importing file; "
         "`\"stdlib/...\"` names the standard library shipped with ftlang (stdlib/models/<family>.ft)."),
    Code("FT207", Stage.RESOLVE, "unknown --set param",
         "`--set NAME=VALUE` names no `param` of the recipe. Declare it with `param NAME = default` and use it "
         "as a value (`lr = lr`)."),
    Code("FT208", Stage.CHECK, "a model source where a data source is expected (or the reverse)",
         "`data d = gguf(\"model.gguf\")` uses a model source as data. Data comes from jsonl, json, csv, "
         "parquet, chat_jsonl or hf_dataset; models go in `model = ...` (hf, local, gguf, or a card)."),
    Code("FT211", Stage.RESOLVE, "bad extends",
         "`recipe child extends parent` names no recipe, or the chain of parents loops back."),
    Code("FT212", Stage.CHECK, "no model card",
         "The checker needs the model's dimensions for its rules and the resource estimate. A stdlib card "
         "(`import \"stdlib/models/llama2.ft\"`, `model = llama2_7b`), a `model_card` block, or `local(\"dir\")` "
         "with a transformers config.json all provide them; a bare hub id is matched against the known cards "
         "and the local Hugging Face cache, never the network."),
    Code("FT223", Stage.CHECK, "cannot fetch a model's config.json",
         "`ftlang card ORG/NAME` downloads the model's config.json (only that file) through huggingface_hub "
         "and writes a model card into the project. It needs network access once (or the file in the "
         "Hugging Face cache); a gated model needs `huggingface-cli login`. `check` itself never goes online."),
    Code("FT213", Stage.CHECK, "unknown GPU",
         "`hardware { gpu = \"...\" }` names a GPU that is not in the hardware catalog (stdlib/hardware.json: "
         "T4-16GB, L4-24GB, RTX4090-24GB, A10-24GB, A100-40GB, A100-80GB, H100-80GB, H200-141GB). Give `memory "
         "= 24GiB` for another device."),
    Code("FT214", Stage.CHECK, "dataset cycle",
         "A dataset pipeline starts from itself, directly or through other datasets."),
    Code("FT221", Stage.CHECK, "unusable path",
         "A path in the recipe (an import, a data file, a model folder, a registry) cannot be used as written: "
         "it holds a NUL byte, a name is longer than the file system allows (255 bytes on most), it is a loop "
         "of symbolic links, it cannot be read, or it names a directory where a file is expected (or a file "
         "where a directory is). The help says which."),
    Code("FT222", Stage.CHECK, "division by zero",
         "A gate or filter divides by a constant zero (`gate perplexity / 0 < 2`, or a param whose value is 0): "
         "it would fail each time it is evaluated, a gate only after the whole training run."),
    Code("FT901", Stage.INSTALL, "missing dependency",
         "A Python package ftlang needs is not installed. check, fmt, plan, explain and schema need only the "
         "core dependencies; run, data and serve need the `train` extra (pip install 'ftlang[train]'), text "
         "metrics the `eval` extra and augmentation the `augment` extra. The message names the package and "
         "the extra that provides it."),
    Code("FT998", Stage.INTERNAL, "internal error in the checker",
         "The checker met a key type it does not know, or a recipe that passed every check was refused by the "
         "plan: a bug in ftlang (please report it with the recipe)."),
    Code("FT999", Stage.INTERNAL, "internal error in a rule",
         "A rule raised an exception: a bug in ftlang. The other diagnostics are still shown."),
)
