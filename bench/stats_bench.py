"""`ftlang data stats` at scale: wall time and peak RSS of the command on generated instruction rows, for this
tree and, with --base, another checkout of ftlang (the baseline), one fresh process each, same project.

    python bench/stats_bench.py --rows 100000 1000000 [--base /path/to/other/checkout]

The project: the scale curve's rows (bench/data_bench.py make_rows: 10-110 words, 1% exact duplicates), the
tiny test model and tokenizer (tests/tiny_models.py), `dedupe(exact) | to_chat`, split 5%. Peak RSS is the
child's ru_maxrss; a run that dies (out of memory) prints its exit code.
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
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

RECIPE = """recipe s {
  model = local("models/m")
  data d = jsonl("data/d.jsonl") { format = instruction }
  dataset train = d | dedupe(exact) | to_chat()
  split train { validation = 5% }
  method lora { r = 8, alpha = 16 }
  train { max_seq_len = 512 }
}
"""


def project(rows: int) -> Path:
    from data_bench import make_rows
    from tiny_models import build_tiny_llama

    root = Path(tempfile.mkdtemp(prefix="ftstats-"))
    (root / ".git").mkdir()
    (root / "data").mkdir()
    build_tiny_llama(root / "models" / "m")
    with (root / "data" / "d.jsonl").open("w") as f:
        for r in make_rows(rows):
            f.write(json.dumps(r) + "\n")
    (root / "s.ft").write_text(RECIPE)
    return root


#: runs the command as its only child, so RUSAGE_CHILDREN is that command's own peak
_WRAP = ("import json, resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
         "print(json.dumps({'rc': r.returncode, 'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
         "'tail': r.stderr[-300:]}))")


def measure(tree: Path, proj: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _WRAP, sys.executable, "-m", "ftlang", "data", "stats", "s.ft",
                          "--json", "out.json"], cwd=proj, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000])
    ap.add_argument("--base", type=Path, help="another ftlang checkout to measure the same way")
    args = ap.parse_args()
    print("| rows | tree | exit | seconds | peak RSS |")
    print("|---|---|---|---|---|")
    for n in args.rows:
        proj = project(n)
        for name, tree in (("base", args.base), ("this", ROOT)):
            if tree is None:
                continue
            m = measure(tree, proj)
            print(f"| {n:,} | {name} | {m['rc']} | {m['seconds']:.1f} | {m['peak_kib'] / 2**20:.2f} GiB |", flush=True)
            if m["rc"]:
                print(m["tail"], file=sys.stderr)


if __name__ == "__main__":
    main()
