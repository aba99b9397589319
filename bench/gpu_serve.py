"""GPU check of the QLoRA → merge → serve path, through the real `ftlang` commands (no in-process shortcuts).

    python bench/gpu_serve.py                 # on a CUDA host (bench/gpu.sh runs it after gpu_bench.py)
    python bench/gpu_serve.py --cpu-smoke     # the same steps on a tiny model on the CPU (a slow test runs this)

Steps, each timed and each failure caught and reported so one broken step does not hide the next:
  1. build a small Llama (random weights, a real byte-level BPE tokenizer with a ChatML template) in a
     throwaway project;
  2. `ftlang run` a recipe with `method qlora { quant { type = nf4, double_quant = true, compute_dtype = … } }`
     and `export { merge = true }`: NF4 base on the device, LoRA trained on top, the adapter merged into the
     base reloaded unquantized (export/merged/), with ftlang's post-export check (merged logits = adapter's);
  3. `ftlang serve --base <merged> --device cuda|cpu` on 127.0.0.1 and 8 concurrent chat requests over HTTP;
     every answer must be a 200 with a choice, and the server must stay up.
Prints one JSON object (and writes it with --json): per step ok/error/seconds plus what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tiny_models: the tokenizer and model builder the tests use


def build_project(root: Path, hidden: int, layers: int, cuda: bool, steps: int) -> Path:
    import torch
    from tiny_models import build_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    model_dir = root / "model"
    tok = build_tokenizer(model_dir)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 128),
        max_position_embeddings=512, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=None, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(model_dir), safe_serialization=True)
    (root / "data").mkdir()
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus one?"},
                          {"role": "assistant", "content": f"{i} plus one is {i + 1}."}]} for i in range(64)]
    (root / "data" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "pyproject.toml").write_text("[project]\nname = 'gpu-serve'\n")
    compute = "bf16" if cuda else "fp32"
    recipe = root / "qlora_merge.ft"
    recipe.write_text(f"""recipe qlora_merge {{
  model = local("model")
  data d = chat_jsonl("data/rows.jsonl")
  dataset train = d
  split train {{ validation = 10% }}
  method qlora {{ r = 8, alpha = 16, dropout = 0, targets = all_linear,
                 quant {{ type = nf4, double_quant = true, compute_dtype = {compute} }} }}
  train {{ lr = 1e-3, max_steps = {steps}, batch = 4, max_seq_len = 64, precision = {compute}, seed = 0 }}
  eval {{ metrics = [perplexity], gate perplexity < 1000000000 }}
  export {{ merge = true }}
}}
""")
    return recipe


def _env() -> dict[str, str]:
    """The environment of an `ftlang` subprocess: this tree's ftlang first on the path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _ftlang(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftlang", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def run_recipe(recipe: Path, timeout: float) -> dict:
    out = recipe.parent / "runs" / "qlora"
    proc = _ftlang("run", str(recipe), "--out", str(out), cwd=recipe.parent, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ftlang run exit {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}")
    merged = out / "export" / "merged"
    if not (merged / "config.json").is_file():
        raise RuntimeError(f"no merged model in {merged}: {proc.stdout[-800:]}")
    check = json.loads((out / "export" / "check.json").read_text()) if (out / "export" / "check.json").is_file() else {}
    return {"merged_dir": str(merged), "post_export_check": check}


def _post(url: str, body: dict, timeout: float) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def serve_and_query(merged: Path, device: str, n: int, timeout: float) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "ftlang", "serve", "--base", str(merged), "--device", device,
                             "--port", "0", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        line, deadline = "", time.monotonic() + timeout
        while "serving" not in line:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server did not start: {line} {proc.stderr.read()[-1500:] if proc.poll() is not None else ''}")
            line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        model = json.loads(urllib.request.urlopen(f"{url}/v1/models", timeout=30).read())["data"][0]["id"]
        results: list[tuple[int, dict, float]] = [None] * n  # type: ignore[list-item]

        def one(i: int) -> None:
            t = time.perf_counter()
            code, body = _post(f"{url}/v1/chat/completions", {
                "model": model, "max_tokens": 16, "temperature": 0,
                "messages": [{"role": "user", "content": f"What is {i} plus one?"}]}, timeout)
            results[i] = (code, body, time.perf_counter() - t)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout)
        wall = time.perf_counter() - t0
        ok = [r for r in results if r and r[0] == 200 and r[1].get("choices")]
        if len(ok) != n:
            raise RuntimeError(f"{n - len(ok)} of {n} requests failed: {[r[:2] for r in results if r not in ok][:2]}")
        if proc.poll() is not None:
            raise RuntimeError("the server exited during the requests")
        return {"requests": n, "answered": len(ok), "wall_s": round(wall, 3),
                "latency_max_s": round(max(r[2] for r in ok), 3),
                "completion_tokens": sum(r[1].get("usage", {}).get("completion_tokens", 0) for r in ok),
                "sample": ok[0][1]["choices"][0]["message"]["content"][:80]}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def step(report: dict, name: str, fn, *args):
    t = time.perf_counter()
    try:
        out = fn(*args)
        report["steps"][name] = {**(out if isinstance(out, dict) else {}), "ok": True,
                                 "seconds": round(time.perf_counter() - t, 2)}
        return out
    except Exception as e:  # noqa: BLE001 - a benchmark reports every step's failure and goes on
        report["steps"][name] = {"ok": False, "seconds": round(time.perf_counter() - t, 2),
                                 "error": f"{type(e).__name__}: {e}"[-2000:]}
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model on the CPU")
    ap.add_argument("--hidden", type=int, help="model width (default 1024 on CUDA, 64 on the CPU)")
    ap.add_argument("--layers", type=int, help="layers (default 8 on CUDA, 2 on the CPU)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available() and not args.cpu_smoke
    hidden = args.hidden or (1024 if cuda else 64)
    layers = args.layers or (8 if cuda else 2)
    report: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "hidden": hidden, "layers": layers,
                    "steps": {}}
    with tempfile.TemporaryDirectory(prefix="ftlang-gpu-serve-") as tmp:
        root = Path(tmp)
        recipe = step(report, "build", build_project, root, hidden, layers, cuda, args.steps)
        run = step(report, "qlora_run_merge", run_recipe, recipe, 900) if recipe else None
        if run:
            step(report, "serve", serve_and_query, Path(run["merged_dir"]), "cuda" if cuda else "cpu",
                 args.requests, 300)
    report["ok"] = all(s["ok"] is True for s in report["steps"].values()) and len(report["steps"]) == 3
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
