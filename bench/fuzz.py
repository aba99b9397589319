"""The long fuzz run: mutate every recipe in the repo and random input, count cases and failures.

    python bench/fuzz.py --n 100000 [--seed 0] [--no-check] [--out fuzz-failures.jsonl]

The recipes (examples/, stdlib/, tests/ .ft files, recipes embedded in tests/*.py, ```ft blocks of the
docs) are checked in a temporary copy of the repo that also holds symlink loops and directories named
like data files, which the path mutations (long names, NUL bytes, `..`, directories) aim at.

Each case goes through the full checker (ftlang.semantic.check.check_text) when it exists, else
parse + fmt + render; a failure is any exception, an unpositioned diagnostic, or a formatter that
changes meaning, loses a comment or is not idempotent (see tests/fuzz_support.py). Failing inputs
are written to --out so they can be replayed. Goal: 0 failures.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fuzz helpers live with the tests
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fuzz_support import find_checker, fuzz_project, invariant_failures, mutate, random_ops  # noqa: E402


def _random_text(rng: random.Random) -> str:
    alphabet = 'recipe{}[]()=,|"#\\ \n\tabcdxyz0123456789.%-<>!GBM_'
    if rng.random() < 0.5:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(200)))
    return bytes(rng.randrange(256) for _ in range(rng.randrange(200))).decode("utf-8", errors="replace")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="number of cases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-check", action="store_true", help="parse + fmt + render only, skip the checker")
    ap.add_argument("--out", default="fuzz-failures.jsonl", help="where failing inputs are written")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="ftlang-fuzz-"))
    corpus = fuzz_project(ROOT, tmp / "repo")
    print(f"fuzz: {len(corpus)} recipes from examples/, stdlib/, tests/ and docs/", file=sys.stderr)
    check = None if args.no_check else find_checker()
    rng = random.Random(args.seed)
    failures = 0
    kinds: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    out = None
    for case in range(args.n):
        roll = rng.random()
        where, original = rng.choice(corpus)
        path = str(where.with_name("fuzz_case.ft"))  # beside the recipe: its relative paths resolve
        if roll < 0.4:  # gentle: mostly still parses, so the checker behind the parser is exercised
            text = mutate(original, random_ops(rng, rng.randrange(1, 4), gentle=True))
        elif roll < 0.9:
            text = mutate(original, random_ops(rng, rng.randrange(1, 5)))
        else:
            text = _random_text(rng)
        problems = invariant_failures(text, path, check)
        if problems:
            failures += 1
            for p in problems:
                kinds[p.split(":")[0] + ": " + p.split(":", 1)[-1].strip()[:80]] += 1
            if out is None:
                out = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 - kept open for the run
            out.write(json.dumps({"case": case, "problems": problems, "path": str(where.relative_to(tmp / "repo")),
                                  "text": text[:20000]}) + "\n")
        else:
            from ftlang.syntax.parser import parse_text

            outcomes["parses" if parse_text(text, path)[0] is not None else "syntax error"] += 1
        if (case + 1) % 5000 == 0:
            rate = (case + 1) / (time.perf_counter() - start)
            print(f"  {case + 1} cases, {failures} failures, {rate:.0f} cases/s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    if out is not None:
        out.close()
    shutil.rmtree(tmp, ignore_errors=True)
    pipeline = "parse+fmt+render+check" if check is not None else "parse+fmt+render"
    print(f"fuzz: {args.n} cases, {failures} failures ({pipeline}, seed {args.seed}, "
          f"{elapsed:.0f} s, {args.n / elapsed:.0f} cases/s)")
    print(f"  clean outcomes: {dict(outcomes)}")
    for kind, count in kinds.most_common(20):
        print(f"  {count:6d}  {kind}")
    if failures:
        print(f"  failing inputs: {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
