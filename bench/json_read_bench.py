"""Reading a `.json` array source: each element's line counted incrementally against the old way (a count
of newlines from the file's start for every element), in the same process on the same text.

    python bench/json_read_bench.py [--rows 5000 20000 52000]

Rows are alpaca-like instruction objects written with indent=2 (alpaca_data.json is a 52K-row array).
Prints seconds per size and the ratio old / new; best of 3 for the new reader, 1 run of the old one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftlang.data import read  # noqa: E402


def _text(n: int) -> str:
    rows = [{"instruction": f"Give three tips for staying healthy, number {i}.", "input": "",
             "output": f"1. Eat a balanced diet. 2. Exercise regularly. 3. Get enough sleep. ({i})"} for i in range(n)]
    return json.dumps(rows, indent=2)


class _FromStart:
    """The old line counter: every element's line counted from the text's start."""

    def __init__(self, text: str):
        self.text = text

    def __call__(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1


def _time(text: str, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        res = read.read_json(text)
        best = min(best, time.perf_counter() - t)
        assert res.fatal is None
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[5000, 20000, 52000])
    args = ap.parse_args()
    print("| rows | MB | incremental s | from the start s | ratio |")
    print("|---|---|---|---|---|")
    for n in args.rows:
        text = _text(n)
        new = _time(text, 3)
        lines = read._Lines
        read._Lines = _FromStart
        try:
            old = _time(text, 1)
        finally:
            read._Lines = lines
        print(f"| {n:,} | {len(text) / 1e6:.1f} | {new:.2f} | {old:.2f} | {old / new:.0f}x |")


if __name__ == "__main__":
    main()
