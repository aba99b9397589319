"""GPU benchmark: LoRA / QLoRA / full fine-tune steps of a Llama-3.2-1B-shaped model, ftlang vs plain PEFT.

    bash bench/gpu.sh                        # one H100/H200, <= 8 minutes
    python bench/gpu_bench.py --cpu-smoke    # the same code on a tiny model on the CPU (tests use this)

What it does, per method (full, lora, qlora):
  1. builds the model from a real config (random weights, no hub) and saves it as safetensors once, so
     QLoRA quantizes at load time like a real base;
  2. builds packed batches: rows of lognormal lengths packed to `seq_len` with per-row position_ids and
     a block-diagonal causal 4D mask, so rows cannot attend to each other;
  3. trains the same steps twice: through a plain transformers Trainer + PEFT script (the baseline) and
     through ftlang's training path (ftlang.backend's method mapping and Trainer construction), same
     seed, same batches;
  4. prints tokens/s of both and their ratio, MFU, and torch.cuda.max_memory_allocated against
     ftlang's static estimate (ftlang.semantic.resources via `ftlang plan`).

MFU with LoRA-adjusted FLOPs, per trained token (N = parameters that take part in matmuls: every
linear layer plus the LM head, not the embedding lookup; N_t = trainable parameters; L layers, s the
attention length, h the hidden size):
    forward                 2·N                        + A,   A = 4·L·s·h (QKᵀ and AV)
    backward, activations   2·N                        + 2·A  (always needed to reach earlier layers)
    backward, weight grads  2·N_t                             (only trainable matrices get them)
    total                   4·N + 2·N_t + 3·A
For full fine-tuning N_t = N and this is the usual 6·N + 12·L·s·h. MFU = total·tokens/s / peak
(bf16 dense: H100/H200 989 TFLOP/s, A100 312; override with --peak-tflops). A causal mask halves the
useful attention work; like most MFU reports we count the full s×s, and A is small next to 4·N here.
QLoRA's dequantization is not counted as useful work, so its MFU reads low by design.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: meta-llama/Llama-3.2-1B config.json (the dims; weights are random)
LLAMA32_1B = dict(
    hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
    intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True, max_position_embeddings=131072,
    rms_norm_eps=1e-5, rope_theta=500000.0, head_dim=64, hidden_act="silu",
)
TINY = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=128, vocab_size=512, tie_word_embeddings=True, max_position_embeddings=512,
    rms_norm_eps=1e-5, rope_theta=10000.0, head_dim=16, hidden_act="silu",
)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


@dataclass
class Settings:
    config: dict
    seq_len: int
    batch: int
    steps: int
    warmup_steps: int  # steps not timed (CUDA init, autotuning)
    r: int = 16
    alpha: int = 32
    lr: float = 2e-4
    seed: int = 0
    bf16: bool = True
    gradient_checkpointing: bool = False


@dataclass
class Result:
    method: str
    path: str  # "peft" (baseline) or "ftlang"
    tokens_per_s: float | None
    step_s: float | None
    trainable: int
    losses: list[float]
    max_memory_bytes: int | None
    note: str = ""


# ---------------------------------------------------------------------------- model and data


def save_base(settings: Settings, out: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**settings.config, bos_token_id=None, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(settings.seed)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if settings.bf16 else torch.float32)
    model.save_pretrained(str(out), safe_serialization=True)
    del model
    return out


def packed_batches(settings: Settings, n: int) -> list[dict]:
    """n packed sequences (each a batch of one): rows of lognormal length packed into seq_len, with
    per-row position_ids and a block-diagonal causal 4D mask; labels = inputs, none across a boundary."""
    import torch

    g = torch.Generator().manual_seed(settings.seed + 1)
    vocab, L = settings.config["vocab_size"], settings.seq_len
    out = []
    for _ in range(n):
        ids = torch.randint(1, vocab, (1, L), generator=g)
        pos = torch.zeros(1, L, dtype=torch.long)
        mask = torch.zeros(1, 1, L, L, dtype=torch.bool)
        labels = ids.clone()
        start = 0
        while start < L:
            length = int(min(L - start, max(8, math.exp(torch.randn(1, generator=g).item() * 0.6
                                                           + math.log(L / 6)))))
            end = start + length
            pos[0, start:end] = torch.arange(length)
            mask[0, 0, start:end, start:end] = torch.tril(torch.ones(length, length, dtype=torch.bool))
            labels[0, start] = -100  # no target predicts across a row boundary
            start = end
        out.append({"input_ids": ids, "position_ids": pos, "attention_mask": mask, "labels": labels})
    return out


class _ListDataset:
    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def _collate(features: list[dict]) -> dict:
    """Stacks packed sequences (each already batch-shaped) along the batch dimension."""
    import torch

    return {k: torch.cat([f[k] for f in features]) for k in features[0]}


# ---------------------------------------------------------------------------- the baseline: plain PEFT


def load_for(method: str, base_dir: Path, settings: Settings):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = torch.bfloat16 if settings.bf16 else torch.float32
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # fp32 master weights + bf16 autocast (TrainingArguments(bf16=True)), the usual mixed precision
    kwargs: dict = {"dtype": torch.float32, "attn_implementation": "sdpa"}
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["dtype"] = dtype
        kwargs["device_map"] = {"": 0} if device == "cuda" else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), **kwargs)
    if method != "qlora":
        model.to(device)
    return model


def peft_model(method: str, model, settings: Settings):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if method == "full":
        return model
    if method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=settings.gradient_checkpointing)
    cfg = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=0.0, target_modules=TARGETS,
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def training_args(settings: Settings, out: Path):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out), max_steps=settings.steps, per_device_train_batch_size=settings.batch,
        learning_rate=settings.lr, lr_scheduler_type="constant", warmup_steps=0, logging_steps=1,
        save_strategy="no", report_to=[], bf16=settings.bf16, seed=settings.seed, data_seed=settings.seed,
        gradient_checkpointing=settings.gradient_checkpointing, dataloader_num_workers=0,
        remove_unused_columns=False, disable_tqdm=True, use_cpu=not _cuda(), max_grad_norm=1.0,
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _step_timer(settings: Settings):
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.losses: list[float] = []

        def on_step_end(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return StepTimer()


def run_trainer(trainer, settings: Settings, method: str, path: str, trainable: int) -> Result:
    import torch

    timer = _step_timer(settings)
    trainer.add_callback(timer)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    timed = timer.times[settings.warmup_steps:]
    step_s = (timed[-1] - timed[0]) / (len(timed) - 1) if len(timed) > 1 else None
    tokens = settings.batch * settings.seq_len
    mem = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    return Result(method, path, tokens / step_s if step_s else None, step_s, trainable, timer.losses, mem)


def baseline(method: str, base_dir: Path, batches: list[dict], settings: Settings, work: Path) -> Result:
    from transformers import Trainer

    model = peft_model(method, load_for(method, base_dir, settings), settings)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trainer = Trainer(model=model, args=training_args(settings, work / f"peft-{method}"),
                      train_dataset=_ListDataset(batches), data_collator=_collate)
    result = run_trainer(trainer, settings, method, "peft", trainable)
    _free(model, trainer)
    return result


# ---------------------------------------------------------------------------- ftlang's path


def recipe_text(method: str, settings: Settings) -> str:
    body = {
        "full": "method full { }",
        "lora": f"method lora {{ r = {settings.r}, alpha = {settings.alpha}, targets = all_linear }}",
        "qlora": (f"method qlora {{ r = {settings.r}, alpha = {settings.alpha}, dropout = 0, targets = all_linear,"
                  " quant { type = nf4, double_quant = true, compute_dtype = bf16 } }"),
    }[method]
    precision = "bf16" if settings.bf16 else "fp32"
    return f"""recipe bench_{method} {{
  model = local("model")
  data d = chat_jsonl("data/rows.jsonl")
  dataset train = d
  split train {{ validation = 10% }}
  {body}
  train {{ lr = {settings.lr}, max_steps = {settings.steps}, batch = {settings.batch}, max_seq_len = {settings.seq_len},
          packing = true, precision = {precision}, seed = {settings.seed}, schedule = constant }}
  hardware {{ gpu = "H100-80GB" }}
  eval {{ metrics = [perplexity], gate perplexity < 1000000 }}
}}
"""


def make_project(root: Path) -> Path:
    """A throwaway project (the base model lives inside it: paths may not escape the project root)."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(20)]
    (root / "data" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def write_recipe(root: Path, method: str, settings: Settings) -> Path:
    path = root / f"bench_{method}.ft"
    path.write_text(recipe_text(method, settings))
    return path


def ftlang_plan(recipe: Path):
    """The plan `ftlang plan` prints for the recipe (its resources hold the static memory estimate)."""
    from ftlang.plan import Plan

    proc = subprocess.run([sys.executable, "-m", "ftlang", "plan", str(recipe)], capture_output=True, text=True,
                          cwd=recipe.parent, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ftlang plan failed: {(proc.stderr or proc.stdout).strip()[-600:]}")
    return Plan.from_json(proc.stdout)


class _Prepared:
    """What build_trainer reads from the data stage, holding the benchmark's shared packed rows."""

    def __init__(self, rows: list[dict]):
        self.train, self.validation = rows, None

    def collator(self):
        return _collate


def ftlang_trainer(plan, batches: list[dict], settings: Settings, work: Path):
    """ftlang's own model loading + method mapping (backend.methods) and Trainer (backend.train)."""
    try:
        from ftlang.backend.context import RunContext
        from ftlang.backend.methods import load_for_training
        from ftlang.backend.train import build_trainer, detect_device
    except ImportError as e:
        raise NotImplementedError(f"ftlang.backend training path not available ({e})") from e
    model = load_for_training(plan)
    device = detect_device(plan)
    ctx = RunContext(plan=plan, run_dir=work / f"ftlang-{plan.method.kind}", model=model, tokenizer=None,
                     data=_Prepared(batches), device=device, log=lambda _: None)
    trainer, _ = build_trainer(ctx, tty=False)
    trainer.args.save_strategy = "no"  # timing only: the 1B checkpoint write is not a training step
    return trainer, model


def ftlang_path(method: str, plan, batches: list[dict], settings: Settings, work: Path) -> Result:
    trainer, model = ftlang_trainer(plan, batches, settings, work)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = run_trainer(trainer, settings, method, "ftlang", trainable)
    _free(model, trainer)
    return result


# ---------------------------------------------------------------------------- accounting


def matmul_params(cfg: dict) -> int:
    h, i, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    hd = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    q = h * cfg["num_attention_heads"] * hd
    kv = 2 * h * cfg["num_key_value_heads"] * hd
    o = cfg["num_attention_heads"] * hd * h
    mlp = 3 * h * i
    return L * (q + kv + o + mlp) + V * h  # + the LM head (tied or not, it is a matmul)


def flops_per_token(cfg: dict, trainable: int, seq_len: int) -> float:
    n = matmul_params(cfg)
    attn = 4 * cfg["num_hidden_layers"] * seq_len * cfg["num_attention_heads"] * (
        cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    n_t = min(trainable, n)
    return 4 * n + 2 * n_t + 3 * attn


def peak_flops(override: float | None) -> tuple[float | None, str]:
    import torch

    if override:
        return override * 1e12, "given"
    if not torch.cuda.is_available():
        return None, "cpu"
    name = torch.cuda.get_device_name(0)
    for key, value in PEAK_BF16.items():
        if key in name:
            return value, name
    return None, name


def _free(*objs) -> None:
    import gc

    import torch

    for o in objs:
        del o
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _gib(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model, a few steps, on the CPU")
    ap.add_argument("--methods", default="full,lora,qlora")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--reps", type=int, default=1, help="runs per path, alternating order; medians reported")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.cpu_smoke:
        settings = Settings(TINY, seq_len=args.seq_len or 64, batch=args.batch or 2, steps=args.steps or 4,
                            warmup_steps=1, bf16=False)
    else:
        if not torch.cuda.is_available():
            print("gpu_bench: no CUDA device; use --cpu-smoke on a CPU-only machine", file=sys.stderr)
            return 2
        settings = Settings(LLAMA32_1B, seq_len=args.seq_len or 2048, batch=args.batch or 4,
                            steps=args.steps or 25, warmup_steps=5)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    peak, device = peak_flops(args.peak_tflops)
    print(f"gpu_bench: device={device} torch={torch.__version__} seq_len={settings.seq_len} "
          f"batch={settings.batch} steps={settings.steps} (first {settings.warmup_steps} untimed) "
          f"bf16={settings.bf16}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="ftlang-gpu-bench-"))
    rows: list[dict] = []
    try:
        project = make_project(work / "proj")
        base_dir = save_base(settings, project / "model")
        batches = packed_batches(settings, settings.steps * settings.batch)
        for method in methods:
            estimate, plan, note = None, None, ""
            try:
                plan = ftlang_plan(write_recipe(project, method, settings))
                estimate = plan.resources.memory.peak_bytes
            except Exception as e:  # noqa: BLE001 - report what is missing, keep benchmarking the rest
                note = f"estimate unavailable: {e}"
            bases, ourss = [], []
            for rep in range(args.reps):  # alternate who goes first: warm caches favour the second
                order = ("peft", "ftlang") if rep % 2 == 0 else ("ftlang", "peft")
                for path in order:
                    if path == "peft":
                        bases.append(baseline(method, base_dir, batches, settings, work))
                        continue
                    try:
                        if plan is None:
                            raise NotImplementedError("no plan")
                        ourss.append(ftlang_path(method, plan, batches, settings, work))
                    except NotImplementedError as e:
                        ourss.append(Result(method, "ftlang", None, None, 0, [], None, note=str(e)))
            base, ours = _median(bases), _median(ourss)
            fpt = flops_per_token(settings.config, base.trainable, settings.seq_len)
            row = {
                "method": method, "trainable": base.trainable, "ftlang_trainable": ours.trainable,
                "estimate_trainable": plan.resources.trainable_params if plan else None, "flops_per_token": fpt,
                "peft_tokens_per_s": base.tokens_per_s, "ftlang_tokens_per_s": ours.tokens_per_s,
                "ratio": (ours.tokens_per_s / base.tokens_per_s) if ours.tokens_per_s and base.tokens_per_s else None,
                "mfu_peft": (fpt * base.tokens_per_s / peak) if peak and base.tokens_per_s else None,
                "mfu_ftlang": (fpt * ours.tokens_per_s / peak) if peak and ours.tokens_per_s else None,
                "max_memory_peft": base.max_memory_bytes, "max_memory_ftlang": ours.max_memory_bytes,
                "estimate_peak": estimate, "peft_losses": base.losses, "ftlang_losses": ours.losses,
                "note": "; ".join(x for x in (note, ours.note) if x),
            }
            rows.append(row)
            _print_row(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"settings": asdict(settings), "device": device, "rows": rows}, indent=1))
    ok = all(r["peft_tokens_per_s"] and all(math.isfinite(x) for x in r["peft_losses"]) for r in rows)
    return 0 if ok else 1


def _median(results: list[Result]) -> Result:
    """The result with the median tokens/s (its losses and memory come along); peak memory is the max."""
    timed = [r for r in results if r.tokens_per_s]
    if not timed:
        return results[0]
    mid = sorted(timed, key=lambda r: r.tokens_per_s)[len(timed) // 2]
    mems = [r.max_memory_bytes for r in results if r.max_memory_bytes]
    return Result(mid.method, mid.path, mid.tokens_per_s, mid.step_s, mid.trainable, mid.losses,
                  max(mems) if mems else None, mid.note)


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def _print_row(r: dict) -> None:
    mem = r["max_memory_peft"]
    est = r["estimate_peak"]
    print(f"[{r['method']:5}] trainable={r['trainable']:,} | tokens/s peft={_fmt(r['peft_tokens_per_s'], '.0f')} "
          f"ftlang={_fmt(r['ftlang_tokens_per_s'], '.0f')} ratio={_fmt(r['ratio'], '.3f')} | "
          f"MFU peft={_fmt(r['mfu_peft'] and r['mfu_peft'] * 100, '.1f')}% "
          f"ftlang={_fmt(r['mfu_ftlang'] and r['mfu_ftlang'] * 100, '.1f')}% | "
          f"max_memory_allocated={_gib(mem)} estimate={_gib(est)}"
          + (f" (measured/estimate {mem / est:.2f})" if mem and est else "")
          + (f" | {r['note']}" if r["note"] else ""), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
