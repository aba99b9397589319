"""The whole `ftlang run` flow for one plan: run dir → data → model → train → save → eval/gates/export.

    code = execute(plan, run_dir=None, resume=None, force=False, allow_outside=False, log=print)

Run directory (`runs/<recipe>/<plan-hash-12>-<UTC stamp>/` under the project root, or `--out`):
plan.json, data.json (the prepared-data reference: cache key, source fingerprints, stats),
checkpoints/, adapter/ (model/ for full), metrics.jsonl, run.json (status, timings, versions,
device, seed), then the eval stage's files. In a multi-process launch every rank runs this; only
rank 0 writes the run files, and every rank records a digest of its trainable weights in ranks/.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftlang import atomic
from ftlang.backend import checkpoint as ckpt
from ftlang.backend.faults import (
    NonFiniteLoss,
    disk_full_diagnostic,
    interrupted_diagnostic,
    nonfinite_diagnostic,
    oom_diagnostic,
)
from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan
from ftlang.semantic.resources import lengths_summary, plan_resources
from ftlang.semantic.throughput import length_note, summary_line

RUNS = "runs"
INTERRUPTED = 130


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def runs_root(plan: Plan) -> Path:
    return plan.resolve(RUNS) / plan.recipe.name


def new_run_dir(plan: Plan) -> Path:
    return runs_root(plan) / f"{plan.short_hash}-{utc_stamp()}"


def latest_run_dir(plan: Plan) -> Path | None:
    """The newest run of this recipe (any plan hash: a changed recipe is then refused, not skipped)."""
    root = runs_root(plan)
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if (p / "plan.json").is_file()]
    # names end in a sortable UTC stamp; --out dirs elsewhere are named explicitly
    runs.sort(key=lambda p: (p.name.rsplit("-", 1)[-1], p.stat().st_mtime))
    return runs[-1] if runs else None


def write_json(path: Path, data: Any) -> None:
    atomic.write_json(path, data, default=str)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("ftlang", "torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def device_info(device: str) -> dict:
    import torch

    info = {"kind": device, "platform": platform.platform(), "cpus": os.cpu_count(), "world_size": world_size()}
    if device == "cuda":
        info["name"] = torch.cuda.get_device_name()
        info["count"] = torch.cuda.device_count()
    return info


def current_rss() -> int | None:
    """The process's resident set size now (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_memory(device: str, rss_before_load: int | None = None) -> int | None:
    """Measured peak of what training holds: CUDA max_memory_allocated; on the CPU the peak RSS minus the
    RSS just before the model loaded (imports, tokenizer and data are not the estimate's business)."""
    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    try:
        import resource

        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB
    except (ImportError, OSError):
        return None
    return peak - rss_before_load if rss_before_load is not None and rss_before_load < peak else peak


def data_lengths(plan: Plan, prepared: Any) -> dict:
    """The training rows' token lengths (packed bins when packing) as the estimator needs them."""
    table = prepared.train
    # TokenRows keep a lengths column; packed bins (and plain lists) are measured row by row
    lengths = [int(n) for n in table.lengths()] if hasattr(table, "lengths") else [
        len(r["input_ids"]) for r in table]
    return lengths_summary(lengths, plan.train.batch, bool(getattr(prepared, "packed", False)))


def weights_digest(model: Any) -> dict:
    """sha256 over the trainable tensors (name, dtype, bytes): ranks of a DDP run must agree."""
    import torch

    h = hashlib.sha256()
    n = 0
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.requires_grad:
            t = p.detach().cpu().contiguous()
            h.update(name.encode())
            h.update(str(t.dtype).encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
            n += t.numel()
    return {"sha256": h.hexdigest(), "trainable": n}


class RunRecord:
    """run.json, rewritten atomically at every change of status (rank 0 only)."""

    def __init__(self, run_dir: Path, plan: Plan, resumed: bool):
        self.path = run_dir / "run.json"
        self.data: dict[str, Any] = {}
        if resumed and self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                self.data = {}
        self.data.update({
            "recipe": plan.recipe.name, "plan_hash": plan.sha256, "run_dir": str(run_dir),
            "seed": plan.train.seed, "deterministic": plan.train.deterministic, "method": plan.method.kind,
            "versions": versions(), "world_size": world_size(),
        })
        self.data.setdefault("started", datetime.now(timezone.utc).isoformat())
        self.data.setdefault("attempts", [])
        self.data["attempts"].append({"started": datetime.now(timezone.utc).isoformat(), "resumed": resumed})

    def update(self, **kw: Any) -> None:
        self.data.update(kw)
        if rank() == 0:
            write_json(self.path, self.data)


def _wait_for(path: Path, log: Callable[[str], None], timeout_s: float = 3600.0) -> None:
    """Non-zero ranks wait for rank 0's data preparation (then they hit the cache instead of racing it)."""
    t0 = time.monotonic()
    while not path.is_file():
        if time.monotonic() - t0 > timeout_s:
            raise DiagnosticError(error("FT711", f"rank {rank()}: rank 0 did not prepare the data in time", None,
                                        help="check rank 0's log for its error"))
        time.sleep(0.2)


def prepare_run_dir(plan: Plan, run_dir: Path | None, resume: bool | Path | None) -> tuple[Path, bool]:
    """(run dir, resuming?) — refusing a resume whose plan hash differs from the stored plan's."""
    if resume:
        target = Path(resume) if isinstance(resume, (str, Path)) and not isinstance(resume, bool) else run_dir
        target = target or latest_run_dir(plan)
        if target is None or not (target / "plan.json").is_file():
            where = target if target is not None else runs_root(plan)
            raise DiagnosticError(error(
                "FT708", f"nothing to resume: no run with a plan.json in {where}", None,
                help="start the run without --resume, or pass the run directory: --resume runs/<recipe>/<dir>",
            ))
        stored = Plan.from_json((target / "plan.json").read_text())
        if stored.sha256 != plan.sha256:
            raise DiagnosticError(error(
                "FT707", f"cannot resume {target}: its plan hash {stored.short_hash} differs from this "
                f"recipe's {plan.short_hash}", None,
                help="resume with the recipe and --set values the run started with, or start a new run "
                     "(without --resume)",
            ))
        return target, True
    if run_dir is None:
        if world_size() > 1:
            raise DiagnosticError(error(
                "FT711", "a multi-process run needs one shared run directory", None,
                help="start it with `ftlang run FILE --launch` (it passes --out to every process)",
            ))
        run_dir = new_run_dir(plan)
    return run_dir, False


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM (a scheduler's stop) ends the run like Ctrl-C: resumable


def execute(plan: Plan, *, run_dir: Path | None = None, resume: bool | Path | None = None, force: bool = False,
            allow_outside: bool = False, log: Callable[[str], None] = print, recipe_file: str | None = None,
            callbacks: tuple = ()) -> int:
    """Run the plan end to end; returns the exit code (0, 3 a failed gate, 130 interrupted or terminated)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _execute(plan, run_dir, resume, force, allow_outside, log, recipe_file, callbacks)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _execute(plan, run_dir, resume, force, allow_outside, log, recipe_file, callbacks)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _execute(plan: Plan, run_dir: Path | None, resume: bool | Path | None, force: bool, allow_outside: bool,
             log: Callable[[str], None], recipe_file: str | None, callbacks: tuple) -> int:
    from ftlang.backend.artifacts import artifact_name, save_trained
    from ftlang.backend.context import RunContext
    from ftlang.backend.load import base_loader, load_tokenizer
    from ftlang.backend.methods import load_for_training, trainable_parameters
    from ftlang.backend.train import detect_device, seed_everything, train

    run_dir, resuming = prepare_run_dir(plan, run_dir, resume)
    recipe_file = recipe_file or plan.recipe.file
    is_main = rank() == 0
    if is_main and not resuming and (run_dir / "plan.json").is_file():
        raise DiagnosticError(error(
            "FT709", f"{run_dir} already holds a run; a new run would mix its checkpoints and metrics", None,
            help=f"continue it with `ftlang run {recipe_file} --resume {run_dir}`, or choose another --out",
        ))
    run_dir.mkdir(parents=True, exist_ok=True)
    if resuming:
        done = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
        if done.get("status") == "done" and (run_dir / artifact_name(plan)).is_dir():
            log(f"run {run_dir} already finished (exit code {done.get('exit_code', 0)}); nothing to resume")
            return int(done.get("exit_code", 0))
    record = RunRecord(run_dir, plan, resuming)
    timings: dict[str, float] = dict(record.data.get("timings") or {})
    if is_main:
        write_json(run_dir / "plan.json", json.loads(plan.to_json()))
    try:
        device = detect_device(plan)
        record.update(status="running", device=device_info(device))
        log(f"run: {run_dir}{' (resuming)' if resuming else ''}")
        wanted = plan.hardware.count * plan.hardware.nodes
        if wanted > 1 and world_size() == 1:
            log(f"note: hardware asks for {wanted} processes; this is one. Add --launch to use them all")

        t = time.perf_counter()
        tokenizer = load_tokenizer(plan)
        from ftlang.data.prepare import prepare

        data_ref = run_dir / "data.json"
        if not is_main:
            _wait_for(data_ref, log)
        prepared = prepare(plan, tokenizer, allow_outside=allow_outside, log=log if is_main else (lambda s: None),
                           run_dir=run_dir if is_main else None)
        timings["data"] = round(time.perf_counter() - t, 3)
        lengths = data_lengths(plan, prepared)
        plan = plan.model_copy(update={"resources": plan_resources(plan, lengths)})  # the hash leaves it out
        if is_main:
            write_json(run_dir / "plan.json", json.loads(plan.to_json()))
            log(f"estimate: {summary_line(plan.resources, plan.hardware)} ({length_note(plan.resources)})")
            write_json(data_ref, {
                "lengths": lengths,
                "cache_key": prepared.cache_key, "cache_hit": getattr(prepared, "cache_hit", None),
                "fingerprints": prepared.fingerprints, "stats": prepared.stats,
                "train_rows": len(prepared.train), "validation_rows": len(prepared.validation or []),
                "quarantine": str(getattr(prepared, "quarantine_path", None) or "") or None,
            })

        t = time.perf_counter()
        seed_everything(plan)
        rss_before_load = current_rss()
        model = load_for_training(plan)
        trainable, total = trainable_parameters(model)
        timings["load"] = round(time.perf_counter() - t, 3)
        log(f"model: {plan.model.card or plan.model.source.path or plan.model.source.gguf_file} · method "
            f"{plan.method.kind} · {trainable:,} of {total:,} parameters train · device {device}")

        ctx = RunContext(plan=plan, run_dir=run_dir, model=model, tokenizer=tokenizer, data=prepared,
                         load_base=base_loader(plan), device=device, force=force)
        finish = _finish_module()
        # on a resume too: the model is still the fresh base here (the checkpoint loads inside train)
        if is_main and finish is not None:
            t = time.perf_counter()
            finish.before_training(ctx)
            timings.setdefault("baseline_eval", round(time.perf_counter() - t, 3))

        root = run_dir / "checkpoints"
        t = time.perf_counter()
        try:
            result = train(plan, prepared, model, tokenizer, run_dir, resume=resuming, device=device, log=log,
                           callbacks=callbacks)
        except NonFiniteLoss as e:
            last = ckpt.latest_complete(root)
            record.update(status="failed", error=f"FT704: non-finite loss at step {e.step}", timings=timings,
                          last_checkpoint=str(last) if last else None)
            raise DiagnosticError(nonfinite_diagnostic(plan, e.step, e.value, last)) from None
        except KeyboardInterrupt:
            last = ckpt.latest_complete(root)
            record.update(status="interrupted", timings=timings, last_checkpoint=str(last) if last else None)
            if is_main:
                from ftlang.render import render

                print(render([interrupted_diagnostic(run_dir, last, recipe_file)], "human"), file=sys.stderr)
            return INTERRUPTED
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            last = ckpt.latest_complete(root)
            record.update(status="failed", error="FT714: no space left on device", timings=timings,
                          last_checkpoint=str(last) if last else None)
            raise DiagnosticError(disk_full_diagnostic(plan, e, last)) from None
        except MemoryError as e:
            record.update(status="failed", error="FT705: out of memory", timings=timings)
            raise DiagnosticError(oom_diagnostic(plan, device, e)) from None
        except RuntimeError as e:
            if _is_oom(e):
                record.update(status="failed", error="FT705: out of memory", timings=timings)
                raise DiagnosticError(oom_diagnostic(plan, device, e)) from None
            raise
        timings["train"] = round(timings.get("train", 0.0) + time.perf_counter() - t, 3)
        if result.tokens_per_s is not None:
            timings["train_tokens_per_s"] = result.tokens_per_s
        ctx.history = result.history
        ctx.timings = timings
        ctx.peak_memory_bytes = peak_memory(device, rss_before_load)

        digest = weights_digest(model)
        ranks = run_dir / "ranks"
        ranks.mkdir(exist_ok=True)
        write_json(ranks / f"rank-{rank()}.json", {"rank": rank(), "global_step": result.global_step, **digest})
        if not is_main:
            return 0

        saved = save_trained(plan, model, tokenizer, run_dir)
        log(f"saved: {saved}")
        record.update(status="trained", global_step=result.global_step, timings=timings, weights=digest,
                      peak_memory_bytes=ctx.peak_memory_bytes, stopped_early=result.stopped_early,
                      resumed_from=str(result.resumed_from) if result.resumed_from else None)
        code = 0
        if finish is not None:
            try:
                code = int(finish.after_training(ctx))
            except DiagnosticError:
                record.update(status="failed", timings=ctx.timings, exit_code=1)
                raise
        record.update(status="done", exit_code=code, timings=ctx.timings,
                      ended=datetime.now(timezone.utc).isoformat())
        return code
    except KeyboardInterrupt:  # during data, model loading or the eval stage: still a resumable run
        last = ckpt.latest_complete(run_dir / "checkpoints")
        record.update(status="interrupted", last_checkpoint=str(last) if last else None)
        if is_main:
            from ftlang.render import render

            print(render([interrupted_diagnostic(run_dir, last, recipe_file)], "human"), file=sys.stderr)
        return INTERRUPTED


def _is_oom(e: BaseException) -> bool:
    try:
        import torch

        if isinstance(e, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return "out of memory" in str(e).lower()


def _finish_module():
    try:
        from ftlang.backend import finish
    except ModuleNotFoundError as e:  # the eval stage not installed in this tree: train and save only
        if e.name and e.name.startswith("ftlang.backend.finish"):
            return None
        raise
    return finish
