"""The codes of the checker's rules; each rule is registered with `@rule(CODE)` in ftlang/semantic/rules/."""

from __future__ import annotations

from ftlang.codes.model import Code, Stage
from ftlang.diagnostics import Severity

CODES: tuple[Code, ...] = (
    Code("FT209", Stage.RULES, "target module not in the model card",
         "LoRA, QLoRA and IA3 targets are module leaf names from the model card (`modules = [...]`) or the "
         "card's aliases (`attention`, `mlp`, `all_linear`). A name the card does not list would match no "
         "layer and PEFT would fail at run time; the checker reports it with the nearest name."),
    Code("FT210", Stage.RULES, "gate on a metric that is not computed",
         "A gate reads metrics from the evaluation: every name in a gate must be one of `eval.metrics` (loss "
         "is always computed), `overfitting`, or `forgetting` (with `forgetting on NAME`). Add the metric to "
         "`metrics = [...]` or change the gate."),
    Code("FT215", Stage.RULES, "no train dataset",
         "A recipe trains on the dataset named `train`: declare it with `dataset train = SOURCE | steps...`."),
    Code("FT216", Stage.RULES, "validation dataset and split both given",
         "The evaluation set is either a `dataset validation = ...` or a `split train { validation = N% }`, "
         "not both: which one the gates judge would be ambiguous."),
    Code("FT217", Stage.RULES, "early stopping on an unknown metric",
         "`early_stop { metric = ... }` watches val_loss or one of the computed eval metrics on the validation "
         "set, so it needs one (a split or a `validation` dataset)."),
    Code("FT218", Stage.RULES, "metric not available for the task",
         "A causal language model is judged by loss, perplexity and generation metrics (bleu, rouge_1, "
         "rouge_2, rouge_l, exact_match); a classifier (`task = classify(labels = [...])`) by loss, accuracy "
         "and f1. A metric of the other task cannot be computed."),
    Code("FT219", Stage.RULES, "data format does not fit the task",
         "A classifier trains on rows with a text and a label (`format = classification`); a causal LM on "
         "instruction, chat or completion rows. The train dataset's source format must fit the task."),
    Code("FT220", Stage.RULES, "unknown chat template",
         "`train { template = \"NAME\" }` (or a model card's `template`) names a chat template shipped in "
         "stdlib/templates/NAME.jinja. Leave it out to use the tokenizer's own chat template."),
    Code("FT224", Stage.RULES, "the tokenizer has no chat template",
         "Chat and instruction rows are rendered through a chat template before tokenization: the tokenizer's "
         "own (`chat_template` in tokenizer_config.json, or chat_template.jinja beside it) or one named with "
         "`train { template = \"chatml\" }`. A base model's tokenizer often has none; name a template (it is "
         "then saved with the trained tokenizer, for serving), or train on completion rows."),
    Code("FT301", Stage.RULES, "qlora needs a 4-bit quant type",
         "QLoRA trains LoRA adapters over a base model quantized to 4 bits (bitsandbytes NF4 or FP4). `quant { "
         "type = int8 }` is 8-bit quantization, which QLoRA does not use: write `type = nf4` (recommended) or "
         "`fp4`."),
    Code("FT302", Stage.RULES, "merge refused for prefix, prompt and adapter methods",
         "Merging folds trained weights into the base model. LoRA, QLoRA and IA3 updates are linear and merge "
         "exactly; prefix tuning, prompt tuning and bottleneck adapters add tokens or layers that have no "
         "place in the base weights, so `export { merge = true }` is refused for them."),
    Code("FT303", Stage.RULES, "packing and gradient checkpointing refused with prefix/prompt tuning",
         "Prefix and prompt tuning prepend virtual tokens to every sequence: packing several examples into one "
         "sequence would let them share one prefix and break the attention layout, and PEFT's prompt learning "
         "does not support gradient checkpointing of the base model. `eval { packing }` is refused for the same reason."),
    Code("FT304", Stage.RULES, "epochs and max_steps both set",
         "Training stops after `epochs` passes or after `max_steps` optimizer steps; giving both leaves it "
         "unclear which one is meant. Keep one."),
    Code("FT305", Stage.RULES, "bf16 on a GPU without bf16",
         "bfloat16 needs an Ampere or newer GPU. The hardware catalog marks which ones (a T4 does not): use "
         "`precision = fp16` (and `compute_dtype = fp16` for qlora) there."),
    Code("FT306", Stage.RULES, "ia3 feedforward modules must be targets",
         "IA3's `feedforward` lists which of its `targets` sit on the feed-forward path (their input is "
         "rescaled instead of their output). PEFT requires every feedforward module to also be a target."),
    Code("FT308", Stage.RULES, "nothing to train",
         "`targets = []` adapts no module: LoRA, QLoRA or IA3 would add zero trainable parameters and the run "
         "would train nothing (PEFT refuses it at run time, after the data is prepared). List the modules to "
         "adapt, or leave `targets` out for the model card's `all_linear`."),
    Code("FT307", Stage.RULES, "packing refused for classification",
         "Packing joins several examples into one sequence; a sequence classifier predicts one label per "
         "sequence, so packed examples would share a label. Set `packing = false` (train and eval) for classify tasks."),
    Code("FT309", Stage.RULES, "flash attention on hardware without it",
         "FlashAttention-2 (`train { attention = flash_attention_2 }`) runs on NVIDIA GPUs of the Ampere "
         "generation or newer (A10, A100, L4, RTX 30xx/40xx, H100) in fp16 or bf16. A T4 (Turing) or the CPU "
         "has no such kernel: use `attention = sdpa`, which is PyTorch's fused attention and works everywhere."),
    Code("FT310", Stage.RULES, "modules_to_save names no module",
         "`modules_to_save = [...]` lists modules PEFT trains in full and saves beside the adapter: the "
         "embeddings (`embed_tokens`; `wte` for GPT-2, `word_embeddings` for BERT), the LM head (`lm_head`), or "
         "linear module names of the model card. A name matching no module would train nothing."),
    Code("FT311", Stage.RULES, "pure bf16 without bf16 precision",
         "`train { pure_bf16 = true }` keeps the weights, gradients and optimizer state in bf16 with no fp32 "
         "master copy; the forward pass then runs in bf16 too, so it needs `precision = bf16`."),
    Code("FT312", Stage.RULES, "chunked loss where it cannot apply",
         "`train { loss = chunked }` runs the LM head and the cross-entropy over slices of the final hidden "
         "states of a causal LM. A classify task has no LM head (its loss is over one label per sequence), and "
         "prefix/prompt tuning prepend virtual tokens whose positions PEFT aligns with the labels inside its "
         "own forward. Leave `loss` unset there."),
    Code("FT313", Stage.RULES, "fsdp + qlora with 4-bit storage FSDP cannot shard",
         "FSDP flattens and shards parameters of one dtype. QLoRA's packed 4-bit weights must therefore be "
         "stored in the compute dtype (PEFT's FSDP+QLoRA guide: bnb_4bit_quant_storage = the compute dtype), "
         "which ftlang does by default under fsdp; a `quant { storage = ... }` that differs from "
         "`compute_dtype` cannot be sharded."),
    Code("FT314", Stage.RULES, "sharding option of another strategy",
         "`zero_stage`, `offload_optimizer` and `offload_params` configure deepspeed (ZeRO 1-3) or fsdp (stage 2 "
         "= SHARD_GRAD_OP, 3 = FULL_SHARD; offload_params); `wrap` and `state_dict` configure fsdp only. "
         "DeepSpeed offloads weights only at ZeRO-3; fsdp has no stage 1 and offloads the optimizer only "
         "together with the weights (offload_params)."),
    Code("FT401", Stage.RULES, "learning rate outside the method's typical range",
         "Typical peak learning rates: full fine-tuning 1e-5..5e-5, LoRA 1e-4..3e-4, QLoRA 2e-4..5e-4. Far "
         "outside them training tends to diverge (too high) or barely move (too low). A warning: small models "
         "and tiny datasets often want more; suppress with `# ftlang: ignore[FT401]`.",
         severity=Severity.WARNING),
    Code("FT402", Stage.RULES, "alpha is not 2·r",
         "LoRA scales its update by alpha / r; alpha = 2·r (scale 2) is the common default that keeps the "
         "effective step size stable when r changes. Another ratio is legal but worth a second look.",
         severity=Severity.WARNING),
    Code("FT403", Stage.RULES, "LoRA rank outside 4..128",
         "Ranks below 4 rarely have the capacity to learn a task; above 128 LoRA approaches full fine-tuning "
         "in memory without its benefits. Both are legal.",
         severity=Severity.WARNING),
    Code("FT404", Stage.RULES, "training set very small or very large",
         "Under 1,000 rows a fine-tune often memorises rather than generalises; over 100,000 rows training is "
         "long and a sample or fewer epochs may do. Counted cheaply from the lines of local jsonl/csv files "
         "(before pipeline steps); other sources are not counted.",
         severity=Severity.WARNING),
    Code("FT405", Stage.RULES, "no validation set",
         "Without a validation set there is no val loss: no early stopping, no overfitting verdict, no honest "
         "gate. Add `split train { validation = 5% }` or a `dataset validation = ...`.",
         severity=Severity.WARNING),
    Code("FT406", Stage.RULES, "no gate",
         "A gate (`eval { gate rouge_l >= 0.35 }`) stops a worse model from being exported and registered. "
         "Without one every run is published.",
         severity=Severity.WARNING),
    Code("FT407", Stage.RULES, "trust_remote_code",
         "`trust_remote_code = true` runs Python code from the model repository when the model loads: only for "
         "repositories you trust, pinned to a revision.",
         severity=Severity.WARNING),
    Code("FT408", Stage.RULES, "max_seq_len beyond the model's context",
         "`train { max_seq_len = N }` longer than the model card's max_position (max_position_embeddings): "
         "positions past it were never trained and may be out of range for learned position embeddings.",
         severity=Severity.WARNING),
    Code("FT409", Stage.RULES, "gate threshold outside the metric's range",
         "BLEU, ROUGE, exact match, accuracy and F1 are fractions in [0, 1] (write 0.35 or 35%). A gate such "
         "as `rouge_l >= 35` can never pass; `accuracy < 2` always passes.",
         severity=Severity.WARNING),
    Code("FT410", Stage.RULES, "GPU memory in decimal units",
         "GPU memory is sold and reported in binary units: a \"24GB\" card holds 24 GiB (24·2^30 bytes), and "
         "nvidia-smi shows MiB. `memory = 24GB` means 24·10^9 bytes, about 22.4 GiB, so the memory check would "
         "plan for 7% less than the card has. A note, not an error: write `24GiB` when you mean the card.",
         severity=Severity.INFO),
    Code("FT411", Stage.RULES, "added tokens whose embeddings do not train",
         "`train { add_tokens = [...] }` grows the embeddings with new rows (initialised to the mean of the "
         "others). An adapter method freezes the embeddings, so the new tokens keep that mean and the model "
         "cannot tell them apart: add `modules_to_save = [embed_tokens, lm_head]` to the lora/qlora method, "
         "or train with method full.",
         severity=Severity.WARNING),
    Code("FT501", Stage.RULES, "estimated memory exceeds the declared hardware",
         "The checker estimates the peak GPU memory per device from the model card, the method, the batch and "
         "the sequence length (weights, gradients, optimizer state, activations, logits; the formulas are in "
         "ftlang/semantic/resources.py) and compares it with `hardware { gpu = ... }` or `memory = ...`. "
         "Remedies, roughly by effect: method qlora (4-bit base), gradient_checkpointing = true, a smaller "
         "batch (with more grad_accum) or max_seq_len, fsdp across devices, or a bigger GPU."),
)
