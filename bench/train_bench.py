"""Training-path overhead: the same tiny LoRA fine-tune through ftlang vs a hand-written Trainer + PEFT script.

    python bench/train_bench.py [--steps 30] [--reps 3] [--batch 8] [--seq 128] [--write]

Both paths train the same saved 2-layer Llama (tests/tiny_models.py) on the same tokenized rows with
the same collator, steps, lr, schedule and seed. ftlang's path is its real one: plan → load_for_training
(methods.py) → train() (train.py, with its checkpoint/metrics/NaN callbacks); checkpoints are off on both
sides (save_steps past the end) so the ratio measures the training loop, not disk writes. Reported:
the step-time ratio ftlang / baseline (median step time over the repetitions, first 3 steps of each
run excluded as warm-up; goal <= 1.02) and the max difference between the two loss curves (goal <= 1e-4).
Each repetition runs ftlang, the baseline and the baseline again (an A/A control that shows the noise
floor of the ratio), in rotating order, so load drift on a shared machine hits all alike.
`--write` records the table under `## train` in bench/RESULTS.md (only that section is replaced).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LR, R, ALPHA, TARGETS, SEED = 2e-3, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], 0
WARMUP_STEPS = 3


def make_timer():
    """One step timer for both paths: wall and process-CPU seconds per optimizer step, plus logged losses."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.wall: list[float] = []
            self.cpu: list[float] = []
            self.losses: list[float] = []

        def on_step_begin(self, args, state, control, **kw):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            self.wall.append(time.perf_counter() - self.t)
            self.cpu.append(time.process_time() - self.c)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    return Timer()


def _rows(tokenizer, n: int, seq: int) -> list[dict]:
    from backend_helpers import _TEXTS

    rows = []
    for i in range(n):
        text = " ".join(_TEXTS[(i + j) % len(_TEXTS)] for j in range(12))
        ids = tokenizer(text)["input_ids"][: seq - (i % 7)]  # ragged lengths: padding is exercised
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)})
    return rows


def ftlang_run(model_dir: Path, prepared, steps: int, batch: int, work: Path):
    from backend_helpers import tiny_plan

    from ftlang.backend.context import RunContext
    from ftlang.backend.load import load_tokenizer
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.train import seed_everything, train
    from ftlang.plan import LoraMethod

    plan = tiny_plan(model_dir, LoraMethod(r=R, alpha=ALPHA, targets=TARGETS), train={
        "lr": LR, "max_steps": steps, "batch": batch, "logging_steps": 1, "seed": SEED, "save_steps": steps * 10,
        "schedule": "linear",
    })
    tok = load_tokenizer(plan)
    seed_everything(plan)
    model = load_for_training(plan)
    timer = make_timer()
    result = train(RunContext(plan=plan, run_dir=work, model=model, tokenizer=tok, data=prepared, log=lambda s: None),
                   tty=False, callbacks=[timer])
    assert [r["loss"] for r in result.history if "loss" in r] == timer.losses
    return timer


def baseline_run(model_dir: Path, prepared, steps: int, batch: int, work: Path):
    """What a user writes by hand: from_pretrained, LoraConfig, get_peft_model, Trainer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, PrinterCallback, Trainer, TrainingArguments, set_seed

    set_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=R, lora_alpha=ALPHA, target_modules=TARGETS))
    args = TrainingArguments(
        output_dir=str(work), learning_rate=LR, max_steps=steps, per_device_train_batch_size=batch,
        logging_steps=1, seed=SEED, data_seed=SEED, lr_scheduler_type="linear", save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, remove_unused_columns=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=prepared.train, data_collator=prepared.collator())
    trainer.remove_callback(PrinterCallback)  # no console output on either side
    timer = make_timer()
    trainer.add_callback(timer)
    trainer.train()
    return timer


def ftlang_own_share(model_dir: Path, prepared, steps: int, batch: int, work: Path) -> tuple[float, float]:
    """(ms per step spent in ftlang's own Python code, its share of the profiled training time).

    Under cProfile, every function whose file is inside the ftlang package counts (its callbacks, the
    training_step override, the metrics writer): a load-independent view of the overhead."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    ftlang_run(model_dir, prepared, steps, batch, work)
    prof.disable()
    stats = pstats.Stats(prof).stats  # {(file, line, fn): (cc, nc, tottime, cumtime, callers)}
    pkg = str(REPO / "ftlang")
    total = sum(v[2] for v in stats.values())
    own = sum(v[2] for k, v in stats.items() if k[0].startswith(pkg))
    # the model is built inside too: count only what runs per step (train.py, checkpoint.py, faults.py)
    per_step = sum(v[2] for k, v in stats.items() if k[0].startswith(pkg) and
                   Path(k[0]).name in ("train.py", "checkpoint.py", "faults.py"))
    return per_step / steps * 1000, own / total if total else 0.0


def write_results(table: str, command: str) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"## train\n\n`{command}`\n\n{table}\n"
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == "## train"), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        text = "\n".join(lines[:start]) + "\n" + section + ("\n" + "\n".join(lines[end:]) if end < len(lines) else "")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text.rstrip("\n") + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads for both paths (1: steadier timings on a shared machine)")
    ap.add_argument("--write", action="store_true", help="record the result under ## train in bench/RESULTS.md")
    a = ap.parse_args(argv)

    import torch
    from backend_helpers import TinyPrepared
    from tiny_models import build_tiny_llama

    from ftlang.backend.load import load_tokenizer  # noqa: F401 - import cost outside the timed loops

    torch.set_num_threads(a.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_dir = build_tiny_llama(tmp_path / "tiny")
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        prepared = TinyPrepared(_rows(tok, a.batch * a.steps, a.seq), [], pad_id=tok.pad_token_id)
        # "c" is the baseline once more: the A/A control, i.e. the noise floor of the ratio on this machine
        wall: dict[str, list[float]] = {"f": [], "b": [], "c": []}
        cpu: dict[str, list[float]] = {"f": [], "b": [], "c": []}
        max_diff = 0.0
        for rep in range(a.reps):
            # rotate which path goes first, so warm caches and load drift favour none of them
            runs = [("f", ftlang_run), ("b", baseline_run), ("c", baseline_run)]
            runs = runs[rep % 3:] + runs[: rep % 3]
            got = {tag: fn(model_dir, prepared, a.steps, a.batch, tmp_path / f"{tag}{rep}") for tag, fn in runs}
            for tag, timer in got.items():
                wall[tag] += timer.wall[WARMUP_STEPS:]
                cpu[tag] += timer.cpu[WARMUP_STEPS:]
            f, b = got["f"], got["b"]
            assert len(f.losses) == len(b.losses) == a.steps, (len(f.losses), len(b.losses))
            max_diff = max(max_diff, max(abs(x - y) for x, y in zip(f.losses, b.losses, strict=True)))
            print(f"rep {rep}: median step wall ftlang {statistics.median(f.wall[WARMUP_STEPS:]) * 1000:.1f} ms / "
                  f"baseline {statistics.median(b.wall[WARMUP_STEPS:]) * 1000:.1f} ms; cpu "
                  f"{statistics.median(f.cpu[WARMUP_STEPS:]) * 1000:.1f} / {statistics.median(b.cpu[WARMUP_STEPS:]) * 1000:.1f} ms; "
                  f"loss {f.losses[0]:.4f} → {f.losses[-1]:.4f}", flush=True)
        own_ms, own_share = ftlang_own_share(model_dir, prepared, a.steps, a.batch, tmp_path / "profiled")
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    med_f, med_b = med["f"], med["b"]
    ratio, cpu_ratio = med["f"] / med["b"], cmed["f"] / cmed["b"]
    control, cpu_control = med["c"] / med["b"], cmed["c"] / cmed["b"]
    # the fastest step of each path: what a step costs when the shared machine leaves it alone
    best = {k: min(v) for k, v in wall.items()}
    best_ratio, best_control = best["f"] / best["b"], best["c"] / best["b"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"step-time ratio ftlang/baseline: {ratio:.3f}x wall, {cpu_ratio:.3f}x process CPU (goal <= 1.02)")
    print(f"A/A control baseline/baseline: {control:.3f}x wall, {cpu_control:.3f}x process CPU (the noise floor)")
    print(f"fastest-step ratio ftlang/baseline: {best_ratio:.3f}x (A/A control {best_control:.3f}x)")
    print(f"max loss-curve difference: {max_diff:.2e} (goal <= 1e-4)")
    print(f"ftlang's own per-step code (callbacks, step override): {own_ms:.2f} ms/step under cProfile; "
          f"all ftlang code {own_share:.2%} of the profiled run")
    if a.write:
        table = "\n".join([
            f"Tiny LoRA fine-tune (2-layer Llama, hidden 64; r {R}, {len(TARGETS)} attention targets; batch {a.batch} × "
            f"≤{a.seq} tokens; {a.steps} steps × {a.reps} rotating reps; CPU, torch threads {a.threads}, "
            f"{os.cpu_count()} cores shared, "
            f"load average {load:.1f} at the end)",
            "",
            "| measure | value | goal |",
            "|---|---|---|",
            f"| ftlang median step time | {med_f * 1000:.1f} ms | |",
            f"| hand-written Trainer + PEFT median step time | {med_b * 1000:.1f} ms | |",
            f"| step-time ratio ftlang / baseline (wall) | {ratio:.3f}× | ≤ 1.02× |",
            f"| step-time ratio ftlang / baseline (process CPU time, less sensitive to the shared load) | {cpu_ratio:.3f}× | ≤ 1.02× |",
            f"| fastest-step ratio ftlang / baseline (min over all steps; A/A control) | {best_ratio:.3f}× "
            f"(control {best_control:.3f}×) | ≤ 1.02× |",
            f"| A/A control: the same baseline run again / baseline (wall; process CPU) | {control:.3f}×; {cpu_control:.3f}× | noise floor |",
            f"| ftlang's own per-step Python (callbacks, NaN check, token count; cProfile) | {own_ms:.2f} ms/step | |",
            f"| all ftlang code, share of the profiled training run (incl. model setup) | {own_share:.2%} | |",
            f"| max loss-curve difference ({a.steps} steps × {a.reps} reps) | {max_diff:.1e} | ≤ 1e-4 |",
        ])
        write_results(table, "python bench/train_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
