"""The serve benchmark's code works end to end (a few requests; the full run is in bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest.importorskip("peft")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_serve_load_small(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "serve_load.py"), "--requests", "12",
                           "--concurrency", "4", "--batch-requests", "4", "--max-tokens", "8", "--json", str(out)],
                          capture_output=True, text=True, timeout=880, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    load, batching = res["load"], res["batching"]
    assert load["requests"] == 12 and load["errors"] == 0 and load["mismatches"] == 0 and load["streamed"] == 3
    assert res["distinct_prompts"] > 0 and load["p50_ms"] > 0 and load["p99_ms"] >= load["p50_ms"]
    assert batching["errors"] == 0 and batching["mismatches"] == 0 and batching["identical_to_sequential"]
    assert batching["ratio"] > 0  # a figure, not a speed claim: tests never assert wall time
    assert "p50" in proc.stdout and "wrong-adapter answers 0" in proc.stdout
