"""The codes of the stages after training: gates, export, registry, report and serve (FT8xx)."""

from __future__ import annotations

from ftlang.codes.model import Code, Stage

CODES: tuple[Code, ...] = (
    Code("FT801", Stage.GATES, "gate on a metric that was not computed",
         "A `gate` reads a name the run did not compute: a metric missing from `eval { metrics = [...] }`, or "
         "`forgetting` without `eval { forgetting on <dataset> }`. The gate cannot be judged, so the run stops "
         "at the gate's line before anything is exported. Add the metric, or remove the gate."),
    Code("FT802", Stage.GATES, "gate cannot be evaluated",
         "A gate's expression failed at run time: a metric is NaN (no validation tokens, or a diverged model), "
         "or the expression compares values of different types. Check metrics.jsonl and the validation set."),
    Code("FT811", Stage.EXPORT, "merge refused for this method",
         "`export { merge = true }` folds weight deltas into the base. LoRA, QLoRA and IA3 learn such deltas; "
         "prefix tuning, prompt tuning and bottleneck adapters add tokens or layers instead, so there is "
         "nothing to merge. Ship the adapter (merge = false) and load it with the base."),
    Code("FT812", Stage.EXPORT, "merge into a quantized base refused",
         "Merging into 4-bit or 8-bit weights rounds the merged result and silently degrades the model. ftlang "
         "reloads the base unquantized (fp32/bf16) and loads the saved adapter onto it; this error means the "
         "loader returned a quantized model."),
    Code("FT813", Stage.EXPORT, "post-export check failed",
         "After merging, ftlang reloads the merged model from disk and checks that its weights differ from the "
         "base (an all-zero or untrained adapter merges to the base: the export would silently ship the base "
         "model), that its logits match the adapter model's, and that a short greedy generation ends within "
         "max_new_tokens. Nothing is exported when a check fails."),
    Code("FT814", Stage.EXPORT, "export could not be written",
         "Writing export/ failed (disk full, permissions). The export is built in a temporary directory and "
         "renamed into place, so no half-written export is left behind."),
    Code("FT820", Stage.REGISTRY, "unknown registry model or version",
         "The registry has no model by that name, or the model has no such version. `ftlang registry list "
         "--registry DIR` shows what is there."),
    Code("FT822", Stage.REGISTRY, "registry is locked",
         "Another publish or promote holds the registry lock (<dir>/<name>/.lock). A lock whose process is "
         "gone, or older than 10 minutes, is broken automatically; a live one is waited for. Delete the lock "
         "file only if no ftlang process is running."),
    Code("FT823", Stage.REGISTRY, "invalid registry name or stage",
         "Registry model names use letters, digits, '.', '_' and '-'; stages are staging, production and "
         "archived (one production version per model: promoting another archives the previous one)."),
    Code("FT824", Stage.REGISTRY, "artifact to publish is missing",
         "A file or directory given to the registry does not exist: the export step did not produce it."),
    Code("FT825", Stage.REGISTRY, "registry write failed",
         "Copying artifacts or writing a manifest failed (disk full, permissions). A publish builds the new "
         "version in a temp dir and renames it into place, so no partial version is ever visible; the temp dir "
         "is removed."),
    Code("FT830", Stage.REPORT, "no run report",
         "`ftlang report show|diff` reads report.json in a run directory written by `ftlang run`."),
    Code("FT840", Stage.SERVE, "cannot serve this model or adapter",
         "`ftlang serve` needs a base model (a directory with config.json, a .gguf file, or a cached hub id) "
         "and PEFT adapter directories (with adapter_config.json) given as --adapter NAME=PATH; the name "
         "\"base\" is reserved for the base model without an adapter."),
    Code("FT850", Stage.EXPORT, "cannot push to the hub",
         "`export { push = \"org/name\" }` uploads the exported model (the merged model, else the adapter) "
         "through huggingface_hub after the gates pass. It needs network access, a token with write access "
         "(`huggingface-cli login` or HF_TOKEN) and a repo id of the form org/name. The run's own artifacts "
         "are complete either way: push them later with `huggingface-cli upload`."),
)
