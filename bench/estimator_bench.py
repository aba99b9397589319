"""Estimate vs measured on this machine's CPU: peak memory and training time of short real runs.

    HF_HUB_OFFLINE=1 python bench/estimator_bench.py [--steps 6] [NAME ...]

Each case runs in a fresh subprocess (peak RSS is per process): the recipe is compiled, its data
prepared with the real tokenizer, the model loaded through backend.methods and trained with
backend.train for `--steps` optimizer steps (eval off). Measured memory: the peak RSS above the RSS
once the model is loaded (after backend.run.settle_after_load returned the loader's residue and reset
the peak), plus the model's tensors, as `ftlang run` reports it. Measured time: the optimizer steps'
mean wall seconds (backend.train's step_times: no Trainer set-up, evaluation or save, as
resources.time counts), which means something only on an idle machine; the steps' process CPU seconds
over the cores are printed next to it. The estimate: the plan's resources made data-aware from the
same prepared rows (semantic/resources.plan_resources). Prints one row per case and the ratios.

Cases: every example that trains on a CPU. examples/sweep.ft's points are the quickstart with another
lr (case `sweep`: the recipe with its own lr; the grid changes nothing the estimate reads); examples/qlora_7b.ft (Llama 2 7B, 4-bit, a GPU recipe) is not
runnable here. `OMP_NUM_THREADS=1` measures single-core seconds, which the CPU time model's constants
come from (docs/estimator.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: name → (recipe, --set overrides)
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "quickstart": ("examples/quickstart.ft", {}),
    "quickstart_ckpt": ("examples/quickstart.ft", {"train.gradient_checkpointing": "true"}),
    "quickstart_bf16": ("examples/quickstart.ft", {"train.precision": "bf16"}),
    "quickstart_full": ("examples/quickstart.ft", {"method": "full"}),
    "adapter": ("examples/adapter.ft", {}),
    "ia3": ("examples/ia3.ft", {}),
    "prefix": ("examples/prefix.ft", {}),
    "prompt": ("examples/prompt.ft", {}),
    "classify_tickets": ("examples/classify_tickets.ft", {}),
    "replay_buffer": ("examples/replay_buffer.ft", {}),
    "sweep": ("examples/sweep.ft", {}),
}


def _plan(recipe: str, overrides: dict[str, str], steps: int):
    from ftlang.plan import EvalPlan, FullMethod
    from ftlang.semantic.check import check_file

    res = check_file(ROOT / recipe)
    plan = res.plan
    assert plan is not None, [str(d) for d in res.diagnostics]
    train = {"max_steps": steps, "epochs": None, "save_steps": 10_000, "logging_steps": 1}
    for key, value in overrides.items():
        if key.startswith("train."):
            field = key.split(".", 1)[1]
            train[field] = {"true": True, "false": False}.get(value, value)
    # no validation set: the Trainer would evaluate at the end of training
    pipelines = {k: v for k, v in plan.datasets.pipelines.items() if k != "validation"}
    update = {"train": plan.train.model_copy(update=train), "eval": EvalPlan(every="end", metrics=["loss"]),
              "datasets": plan.datasets.model_copy(update={"pipelines": pipelines, "split": None})}
    if overrides.get("method") == "full":
        update["method"] = FullMethod()
    return plan.model_copy(update=update)


def _cpu_timer(out: list[float]):
    """A callback adding each optimizer step's process CPU seconds to `out` (the wall seconds per step
    are the backend's own TrainResult.step_times)."""
    from transformers import TrainerCallback

    class CpuTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.c0 = time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            out.append(time.process_time() - self.c0)

    return CpuTimer()


def child(name: str, steps: int, out: Path) -> None:
    from ftlang.backend.context import RunContext
    from ftlang.backend.load import load_tokenizer
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.run import current_rss, data_lengths, model_bytes, peak_rss, settle_after_load
    from ftlang.backend.train import seed_everything, train
    from ftlang.data.prepare import prepare
    from ftlang.semantic.resources import plan_resources

    recipe, overrides = CASES[name]
    plan = _plan(recipe, overrides, steps)
    tok = load_tokenizer(plan)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare(plan, tok, log=lambda s: None, cache_dir=Path(tmp) / "cache")
        lengths = data_lengths(plan, prepared)
        res = plan_resources(plan, lengths, device="cpu")
        seed_everything(plan)
        before = current_rss()
        model = load_for_training(plan)
        loaded = peak_rss() - before
        settle_after_load()  # as `ftlang run` does: the loader's residue returned, the peak reset
        after_load, tensors = current_rss(), model_bytes(model)
        t0, c0 = time.perf_counter(), time.process_time()
        ctx = RunContext(plan=plan, run_dir=Path(tmp) / "run", model=model, tokenizer=tok, data=prepared,
                         device="cpu", log=lambda s: None)
        step_cpu: list[float] = []
        result = train(ctx, tty=False, callbacks=(_cpu_timer(step_cpu),))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss() - before
    # what `ftlang run` reports: the peak above the loaded model, plus the model's own tensors (the
    # loader's transient copies, which malloc may keep resident, are not training memory)
    peak_over_model = peak_rss() - after_load + tensors
    # measured time: the optimizer steps' wall seconds (what resources.time estimates: no Trainer
    # set-up, evaluation or save), on an idle machine; the CPU seconds of the steps over the cores are a
    # second figure, less disturbed by other jobs on a shared machine (but spinning OpenMP threads inflate it)
    times = list(result.step_times)
    per_step = sum(step_cpu) / len(step_cpu) / (os.cpu_count() or 1) if step_cpu else cpu / steps / (os.cpu_count() or 1)
    est_step = res.time.seconds / steps if res.time else None
    out.write_text(json.dumps({
        "name": name, "steps": steps, "lengths": lengths, "measured_peak": peak_over_model,
        "measured_peak_since_before_load": peak, "measured_load_peak": loaded, "model_bytes": tensors,
        "estimate_peak": res.memory.peak_bytes, "memory": res.memory.model_dump(), "seq_len": res.seq_len,
        "measured_step_s": per_step, "estimate_step_s": est_step, "train_wall_s": wall, "train_cpu_s": cpu,
        "wall_step_s": sum(times) / len(times) if times else wall / steps,
        "overhead_s": res.time.overhead_seconds / steps if res.time else None,
        "step_wall_s": times, "step_cpu_s": step_cpu, "threads": __import__("torch").get_num_threads(),
        "tokens_per_step": res.time.tokens / steps if res.time else None,
    }))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=list(CASES))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.steps, Path(args.out))
        return 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    from ftlang.allocator import jemalloc_library

    lib = jemalloc_library()
    if lib and os.environ.get("FTLANG_ALLOCATOR", "").lower() != "system":
        # what `ftlang run` trains under (ftlang/allocator.py); FTLANG_ALLOCATOR=system measures glibc's malloc
        env["LD_PRELOAD"] = " ".join(p for p in (lib, os.environ.get("LD_PRELOAD", "")) if p)
    print("allocator:", "jemalloc" if "jemalloc" in env.get("LD_PRELOAD", "") else "system (the C library's malloc)")
    print(f"{'case':<18} {'seq':>5} {'est MiB':>8} {'meas MiB':>8} {'est/meas':>8} "
          f"{'est s/step':>10} {'wall s/step':>11} {'est/wall':>8} {'cpu s/step':>10} {'est/cpu':>7}")
    for name in args.names:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            proc = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(args.steps),
                                   "--out", f.name], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name:<18} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(Path(f.name).read_text())
        mib = 2**20
        est = r["estimate_step_s"] or float("nan")
        print(f"{name:<18} {r['seq_len']:>5} {r['estimate_peak'] / mib:>8.0f} {r['measured_peak'] / mib:>8.0f} "
              f"{r['estimate_peak'] / r['measured_peak']:>8.2f} {est:>10.2f} {r['wall_step_s']:>11.2f} "
              f"{est / r['wall_step_s']:>8.2f} {r['measured_step_s']:>10.2f} {est / r['measured_step_s']:>7.2f}",
              flush=True)
        print("   " + json.dumps({k: r[k] for k in ("memory", "lengths", "measured_load_peak", "model_bytes",
                                                    "measured_peak_since_before_load", "train_cpu_s",
                                                    "train_wall_s", "step_wall_s", "step_cpu_s", "overhead_s",
                                                    "tokens_per_step", "threads")}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
