"""Benchmark `ftlang check` (not a timed test): startup against a peer tool's import, and throughput.

1. Median wall time of `ftlang check FILE` (a fresh process each time, from compiled bytecode as an
   installed wheel runs) over the examples/ recipes, against `python -c "from transformers import TrainingArguments; import peft"` — the import a
   peer tool needs before it can validate anything — measured in the same run. Goal: ≤ 0.05×.
2. Recipes per second checking 1,000 generated recipes in one process (parse → resolve → types →
   rules → sealed plan for each). Goal: ≥ 500/s.

    python bench/check_bench.py [--runs 5] [--peer-runs 3] [--recipes 1000] [--write]

`--write` replaces the `## check` section of bench/RESULTS.md with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER = "from transformers import TrainingArguments; import peft"


def _wall(cmd: list[str], cwd: Path) -> tuple[float, int]:
    return _timed(cmd, cwd)[0::2]


def _timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child: user + system, exit code). CPU time barely moves with
    the machine's load, so its ratio is the steadier figure on a shared machine."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.returncode


def _recipes() -> tuple[Path, list[Path]]:
    examples = sorted((REPO / "examples").glob("*.ft"))
    if examples:
        return REPO / "examples", examples
    # no examples yet: the LANGUAGE.md corpus in a temp project
    sys.path.insert(0, str(REPO / "tests"))
    from semantic_project import make_project

    root = make_project(Path(tempfile.mkdtemp(prefix="ftbench-")))
    return root, sorted(p for p in root.glob("*.ft") if not p.name.startswith("reject_"))


def startup(runs: int, peer_runs: int) -> dict:
    cwd, files = _recipes()
    ftlang = [sys.executable, "-m", "ftlang"]
    # bytecode as an installed wheel has it (pip compiles at install; the peer's site-packages has it too):
    # without it, and with PYTHONDONTWRITEBYTECODE set, every run would time the compiler instead
    import compileall

    compileall.compile_dir(str(REPO / "ftlang"), quiet=1)
    _wall([*ftlang, "check", str(files[0])], cwd)  # warm the OS file cache and the grammar cache
    times, cpus, codes = [], [], {}
    for f in files:
        for _ in range(runs):
            dt, cpu, rc = _timed([*ftlang, "check", str(f)], cwd)
            times.append(dt)
            cpus.append(cpu)
            codes[f.name] = rc
    peer = [_timed([sys.executable, "-c", PEER], cwd) for _ in range(peer_runs)]
    check_median, peer_median = statistics.median(times), statistics.median(p[0] for p in peer)
    check_cpu, peer_cpu = statistics.median(cpus), statistics.median(p[1] for p in peer)
    return {"files": len(files), "runs_per_file": runs, "check_median_s": check_median,
            "check_min_s": min(times), "peer_median_s": peer_median, "ratio": check_median / peer_median,
            "check_cpu_s": check_cpu, "peer_cpu_s": peer_cpu, "cpu_ratio": check_cpu / peer_cpu,
            "exit_codes": codes}


_METHODS = [
    "method lora {{ r = {r}, alpha = {a}, dropout = 0.05, targets = {t} }}",
    "method qlora {{ r = {r}, alpha = {a}, targets = {t}, quant {{ type = nf4, double_quant = true }} }}",
    "method ia3 {{ targets = [k_proj, v_proj, down_proj], feedforward = [down_proj] }}",
    "method prefix {{ virtual_tokens = {v} }}",
    "method prompt {{ virtual_tokens = {v}, init = text(\"Answer the ticket:\") }}",
    "method adapter {{ bottleneck = {b}, placement = [attention, ffn] }}",
    "method full {{ }}",
]
_CARDS = [("llama2", "llama2_7b"), ("llama31", "llama31_8b"), ("mistral", "mistral_7b"), ("qwen25", "qwen25_0_5b"),
          ("smollm2", "smollm2_135m"), ("llama32", "llama32_1b")]


def generate(i: int, rng: random.Random) -> str:
    family, card = rng.choice(_CARDS)
    r = rng.choice([4, 8, 16, 32, 64])
    method = rng.choice(_METHODS).format(r=r, a=2 * r, t=rng.choice(["attention", "all_linear", "[q_proj, v_proj]"]),
                                         v=rng.choice([8, 16, 20]), b=rng.choice([16, 32, 64]))
    if method.startswith("method full"):  # full fine-tuning of a 7B model fits no single GPU here
        family, card = "smollm2", "smollm2_135m"
    gpu = rng.choice(["A100-80GB", "H100-80GB", "H200-141GB"])
    return f'''# generated recipe {i}
import "stdlib/models/{family}.ft"
param lr = {rng.choice(["1e-4", "2e-4", "3e-4"])}
recipe gen_{i} {{
  model = {card}
  data d = jsonl("data/train.jsonl") {{ format = instruction, fields {{ instruction = "q", output = "a" }} }}
  data g = chat_jsonl("data/chat.jsonl")
  dataset train = d | dedupe(exact) | filter(len(output) > {rng.randint(0, 5)}) | to_chat(system = "Be brief.") | mix(g, ratio = {rng.randint(1, 30)}%)
  split train {{ validation = {rng.randint(2, 10)}%, seed = {i} }}
  {method}
  train {{ lr = lr, epochs = {rng.randint(1, 4)}, batch = {rng.choice([1, 2, 4])}, grad_accum = 4, warmup = 3%, schedule = cosine, precision = bf16, max_seq_len = {rng.choice([512, 1024])}, gradient_checkpointing = {str(not method.startswith("method pre") and not method.startswith("method prompt")).lower()} }}
  hardware {{ gpu = "{gpu}", count = 1 }}
  eval {{ every = epoch, metrics = [perplexity, rouge_l], gate perplexity < 20, gate rouge_l >= 0.3 and not overfitting }}
  export {{ register "gen-{i}" {{ registry = "registry/" }} }}
}}
'''


def throughput(n: int) -> dict:
    from ftlang.diagnostics import Severity
    from ftlang.semantic.check import check_text

    root = Path(tempfile.mkdtemp(prefix="ftbench-gen-"))
    (root / ".git").mkdir()
    (root / "data").mkdir()
    (root / "data" / "train.jsonl").write_text(json.dumps({"q": "x", "a": "y"}) + "\n" * 1)
    (root / "data" / "chat.jsonl").write_text(json.dumps({"messages": []}) + "\n")
    rng = random.Random(0)
    texts = [generate(i, rng) for i in range(n)]
    check_text(texts[0], root / "warm.ft")  # the grammar and the stdlib cards load once per process
    errors = plans = 0
    t = time.perf_counter()
    for i, text in enumerate(texts):
        res = check_text(text, root / f"gen_{i}.ft")
        errors += sum(d.severity is Severity.ERROR for d in res.diagnostics)
        plans += res.plan is not None
    dt = time.perf_counter() - t
    return {"recipes": n, "seconds": dt, "recipes_per_s": n / dt, "plans": plans, "errors": errors}


def write_results(startup_r: dict, through: dict, cmd: str) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from results import write_section

    section = (
        "## check\n\n"
        f"`{cmd}` on {os.cpu_count()} CPU cores (shared; load average {os.getloadavg()[0]:.1f} at the end)\n\n"
        "| measure | value | goal |\n|---|---|---|\n"
        f"| `ftlang check` median wall, {startup_r['files']} examples × {startup_r['runs_per_file']} runs | "
        f"{startup_r['check_median_s']:.3f} s (min {startup_r['check_min_s']:.3f} s) | |\n"
        f"| `python -c \"{PEER}\"` median wall | {startup_r['peer_median_s']:.3f} s | |\n"
        f"| ratio check / peer import | {startup_r['ratio']:.3f}× | ≤ 0.05× |\n"
        f"| CPU time (user + system), median: check / peer import | {startup_r['check_cpu_s']:.3f} s / "
        f"{startup_r['peer_cpu_s']:.3f} s = {startup_r['cpu_ratio']:.3f}× | ≤ 0.05× |\n"
        f"| in-process throughput, {through['recipes']} generated recipes | {through['recipes_per_s']:.0f} recipes/s "
        f"({through['plans']} plans, {through['errors']} errors) | ≥ 500/s |\n\n"
    )
    write_section("check", section)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peer-runs", type=int, default=3)
    ap.add_argument("--recipes", type=int, default=1000)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    s = startup(args.runs, args.peer_runs)
    print(f"ftlang check median {s['check_median_s']:.3f} s over {s['files']} files x {s['runs_per_file']} runs "
          f"(min {s['check_min_s']:.3f} s); exit codes {s['exit_codes']}")
    print(f"peer import median {s['peer_median_s']:.3f} s")
    print(f"ratio {s['ratio']:.3f}x (goal <= 0.05x)")
    print(f"CPU time check {s['check_cpu_s']:.3f} s / peer {s['peer_cpu_s']:.3f} s = {s['cpu_ratio']:.3f}x")
    t = throughput(args.recipes)
    print(f"throughput {t['recipes_per_s']:.0f} recipes/s over {t['recipes']} recipes "
          f"({t['plans']} plans, {t['errors']} errors) (goal >= 500/s)")
    if args.write:
        write_results(s, t, "python bench/check_bench.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
