"""The whole `ftlang run` flow for one plan: run dir → data → model → train → save → eval/gates/export.

    code = execute(plan, run_dir=None, resume=None, force=False, allow_outside=False, log=print)

Run directory (`runs/<recipe>/<plan-hash-12>-<UTC stamp>/` under the project root, or `--out`):
plan.json, data.json (the prepared-data reference: cache key, source fingerprints, stats),
checkpoints/, adapter/ (model/ for full), metrics.jsonl, run.json (status, timings, versions,
device, seed), then the eval stage's files. In a multi-process launch every rank runs this; only
rank 0 writes the run files, and every rank records a digest of its trainable weights in ranks/.

The stages are small functions over one `Run` (the run's bookkeeping) and one `RunContext` (the typed
hand-off to training and the eval stage). One context manager, `recorded_faults`, turns whatever ends
a run early into its final run.json status (`failed` with the diagnostics, or `interrupted`), so no
exit path leaves a run "running".
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftlang import atomic
from ftlang.allocator import active_allocator
from ftlang.backend import checkpoint as ckpt
from ftlang.backend.context import RunContext
from ftlang.backend.faults import diagnose, interrupted_diagnostic
from ftlang.diagnostics import Diagnostic, DiagnosticError, error
from ftlang.plan import Plan
from ftlang.semantic.resources import plan_resources
from ftlang.semantic.throughput import length_note, summary_line

if TYPE_CHECKING:
    from ftlang.backend.train import TrainResult
    from ftlang.data.prepare import Prepared

RUNS = "runs"
INTERRUPTED = 130


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def leave_process_group() -> None:
    """Destroy this rank's torch.distributed process group, if one is up.

    Called as each rank's run ends (rank 0 after it evaluated and exported alone, the others right after the
    save): a rank that exits with its gloo group still alive can abort in the group's thread teardown
    ("terminate called without an active exception", SIGABRT), and torchrun then stops rank 0 mid-export.
    Destroying a group is local to the rank, so rank 0 may still be evaluating."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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


def settle_after_load() -> None:
    """Start the CPU peak-memory window at the loaded model (Linux/glibc; elsewhere a no-op): hand the
    loader's freed transient copies back to the OS (malloc_trim), so that training cannot reuse them
    unseen, and reset the peak RSS to the RSS now (clear_refs 5), so that the loader's own peak, which
    a small model's training may never reach again, is not read as training's."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss() -> int | None:
    """The peak RSS since the process started or settle_after_load reset it (VmHWM), else ru_maxrss."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB
    except (ImportError, OSError):
        return None


def model_bytes(model: Any) -> int:
    """Bytes of the model's parameters and buffers (shared tensors once)."""
    seen, n = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            n += t.numel() * t.element_size()
    return n


def peak_memory(device: str, rss_after_load: int | None = None, loaded_bytes: int = 0) -> int | None:
    """Measured peak of what training holds: CUDA max_memory_allocated; on the CPU the peak RSS above the
    RSS once the model was loaded, plus the model's own tensors. Imports, tokenizer, data and the
    loader's transient copies (a GGUF is dequantized, then copied into a fresh model; malloc keeps much
    of that resident) are not what the estimate counts. Reading the peak before the model loads gives
    the peak since then instead. settle_after_load starts the window after the loader's residue, and
    start_memory_window again when training starts (after the baseline evaluation)."""
    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    peak = peak_rss()
    if peak is None:
        return None
    if rss_after_load is None or rss_after_load >= peak:
        return peak
    return peak - rss_after_load + loaded_bytes


def data_lengths(plan: Plan, prepared: Prepared) -> dict:
    """The training rows' token lengths (packed bins when packing) as the estimator needs them."""
    from ftlang.data.lengths import table_lengths  # shared with `ftlang check --data`

    return table_lengths(prepared.train, plan, prepared.packed)


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

    #: what a previous attempt's ending wrote; a new attempt (a --resume) starts without it
    FINAL_KEYS = ("error", "diagnostics", "exit_code", "ended", "last_checkpoint")

    def __init__(self, run_dir: Path, plan: Plan, resumed: bool):
        self.path = run_dir / "run.json"
        self.data: dict[str, Any] = {}
        if resumed and self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                self.data = {}
        for key in self.FINAL_KEYS:
            self.data.pop(key, None)
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

    def close(self, status: str, exit_code: int, diagnostics: list[Diagnostic] = (), **kw: Any) -> None:
        """The final status of this attempt (done, failed or interrupted), with what ended it."""
        ended = datetime.now(timezone.utc).isoformat()
        self.data["attempts"][-1].update(status=status, ended=ended)
        first = next((d for d in diagnostics if d.severity.value == "error"), None)
        if first is not None:
            kw.setdefault("error", f"{first.code}: {first.message}")
        self.update(status=status, exit_code=exit_code, ended=ended,
                    diagnostics=[d.to_json() for d in diagnostics], **kw)


@dataclass
class Run:
    """One run's bookkeeping, carried through the stages."""

    plan: Plan
    run_dir: Path
    resuming: bool
    record: RunRecord
    recipe_file: str
    log: Callable[[str], None]
    timings: dict[str, float] = field(default_factory=dict)
    device: str | None = None
    #: the CPU peak-memory measure counts from the loaded model on (peak_memory)
    rss_after_load: int | None = None
    loaded_bytes: int = 0

    @property
    def is_main(self) -> bool:
        return rank() == 0

    @contextmanager
    def timed(self, stage: str, *, add: bool = False) -> Iterator[None]:
        t = time.perf_counter()
        yield
        spent = time.perf_counter() - t
        self.timings[stage] = round((self.timings.get(stage, 0.0) if add else 0.0) + spent, 3)

    def last_checkpoint(self) -> Path | None:
        return ckpt.latest_complete(self.run_dir / "checkpoints")


@dataclass
class Outcome:
    code: int = 0


@contextmanager
def recorded_faults(run: Run) -> Iterator[Outcome]:
    """The one place a run's ending is recorded: an interrupt becomes exit 130 and status `interrupted`;
    any other exception status `failed` with its diagnostics (known faults such as a non-finite loss, an
    out-of-memory or a full disk become their diagnostic first); an unknown one is re-raised as it is."""
    outcome = Outcome()
    try:
        yield outcome
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see _terminated): a resumable run
        last = run.last_checkpoint()
        diag = interrupted_diagnostic(run.run_dir, last, run.recipe_file)
        run.record.close("interrupted", INTERRUPTED, [diag], timings=run.timings,
                         last_checkpoint=str(last) if last else None)
        if run.is_main:
            from ftlang.render import render

            print(render([diag], "human"), file=sys.stderr)
        outcome.code = INTERRUPTED
    except BaseException as exc:
        last = run.last_checkpoint()
        diags = diagnose(exc, run.plan, run.device or "cpu", last)
        internal = {} if diags is not None else {"error": f"internal error: {type(exc).__name__}: {exc}"}
        run.record.close("failed", 1 if diags is not None else 70, diags or [], timings=run.timings,
                         last_checkpoint=str(last) if last else None, **internal)
        if diags is None or isinstance(exc, DiagnosticError):
            raise
        raise DiagnosticError(diags) from None


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


def open_run(plan: Plan, run_dir: Path | None, resume: bool | Path | None, recipe_file: str | None,
             log: Callable[[str], None]) -> Run | int:
    """The run directory and its record; an int (the stored exit code) when a resumed run already ended."""
    from ftlang.backend.artifacts import artifact_name

    run_dir, resuming = prepare_run_dir(plan, run_dir, resume)
    recipe_file = recipe_file or plan.recipe.file
    if rank() == 0 and not resuming and (run_dir / "plan.json").is_file():
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
    run = Run(plan, run_dir, resuming, record, recipe_file, log, timings=dict(record.data.get("timings") or {}))
    if run.is_main:
        write_json(run_dir / "plan.json", json.loads(plan.to_json()))
    record.update(status="running")
    return run


def start(run: Run) -> None:
    from ftlang.backend.train import detect_device

    run.device = detect_device(run.plan)
    run.record.update(device=device_info(run.device))
    run.log(f"run: {run.run_dir}{' (resuming)' if run.resuming else ''}")
    wanted = run.plan.hardware.count * run.plan.hardware.nodes
    if wanted > 1 and world_size() == 1:
        run.log(f"note: hardware asks for {wanted} processes; this is one. Add --launch to use them all")


def prepare_data(run: Run, allow_outside: bool) -> tuple[Any, Prepared]:
    """The tokenizer and the data stage (rank 0 prepares; the other ranks wait and read its cache);
    writes data.json."""
    from ftlang.backend.load import load_tokenizer
    from ftlang.data.prepare import prepare

    data_ref = run.run_dir / "data.json"
    with run.timed("data"):
        tokenizer = load_tokenizer(run.plan)
        if not run.is_main:
            _wait_for(data_ref, run.log)
        prepared = prepare(run.plan, tokenizer, allow_outside=allow_outside,
                           log=run.log if run.is_main else (lambda s: None),
                           run_dir=run.run_dir if run.is_main else None)
    lengths = data_lengths(run.plan, prepared)
    # the estimate, now from the real token lengths (the plan hash leaves resources out)
    run.plan = run.plan.model_copy(update={"resources": plan_resources(run.plan, lengths, device=run.device)})
    if run.is_main:
        write_json(run.run_dir / "plan.json", json.loads(run.plan.to_json()))
        run.log(f"estimate: {summary_line(run.plan.resources, run.plan.hardware)} "
                f"({length_note(run.plan.resources)})")
        write_json(data_ref, {
            "lengths": lengths,
            "cache_key": prepared.cache_key, "cache_hit": prepared.cache_hit,
            "fingerprints": prepared.fingerprints, "stats": prepared.stats,
            "train_rows": len(prepared.train), "validation_rows": len(prepared.validation or []),
            "quarantine": str(prepared.quarantine_path) if prepared.quarantine_path else None,
        })
    return tokenizer, prepared


def load_model(run: Run) -> Any:
    from ftlang.backend.methods import load_for_training, trainable_parameters
    from ftlang.backend.train import seed_everything

    plan = run.plan
    with run.timed("load"):
        seed_everything(plan)
        model = load_for_training(plan)
        settle_after_load()
        run.rss_after_load, run.loaded_bytes = current_rss(), model_bytes(model)
        trainable, total = trainable_parameters(model)
    run.log(f"model: {plan.model.card or plan.model.source.path or plan.model.source.gguf_file} · method "
            f"{plan.method.kind} · {trainable:,} of {total:,} parameters train · device {run.device}")
    return model


def baseline(run: Run, ctx: RunContext) -> None:
    """The base model's metrics (rank 0); on a resume too: the model is still the fresh base here (the
    checkpoint loads inside train)."""
    from ftlang.backend import finish

    if run.is_main:
        with run.timed("baseline_eval"):
            finish.before_training(ctx)


def start_memory_window(run: Run, device: str) -> None:
    """The measured peak is training's, as the estimate is: the baseline evaluation (generation, its
    own batches) ran after the load, so its heap is returned and the peak reset again here; RSS now
    holds the model plus what training does not allocate. On CUDA the allocator's peak is reset."""
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    settle_after_load()
    run.rss_after_load = current_rss()


def train_model(run: Run, ctx: RunContext, callbacks: tuple) -> TrainResult:
    from ftlang.backend.train import train

    start_memory_window(run, ctx.device or "cpu")
    with run.timed("train", add=True):
        result = train(ctx, resume=run.resuming, callbacks=callbacks)
    # the optimizer steps alone (no Trainer set-up, evaluations or saves): what resources.time estimates
    run.timings["train_steps"] = round(run.timings.get("train_steps", 0.0) + sum(result.step_times), 3)
    if result.tokens_per_s is not None:
        run.timings["train_tokens_per_s"] = result.tokens_per_s
    ctx.history = result.history
    ctx.peak_memory_bytes = peak_memory(ctx.device or "cpu", run.rss_after_load, run.loaded_bytes)
    return result


def save(run: Run, ctx: RunContext, result: TrainResult) -> None:
    """Every rank records its weights' digest; rank 0 saves the adapter (or model)."""
    from ftlang.backend.artifacts import save_trained

    digest = weights_digest(ctx.model)
    ranks = run.run_dir / "ranks"
    ranks.mkdir(exist_ok=True)
    write_json(ranks / f"rank-{rank()}.json", {"rank": rank(), "global_step": result.global_step,
                                               "data_cache_hit": getattr(ctx.data, "cache_hit", None), **digest})
    if not run.is_main:
        return
    saved = save_trained(run.plan, ctx.model, ctx.tokenizer, run.run_dir)
    run.log(f"saved: {saved}")
    run.record.update(status="trained", global_step=result.global_step, timings=run.timings, weights=digest,
                      peak_memory_bytes=ctx.peak_memory_bytes, allocator=active_allocator(),
                      stopped_early=result.stopped_early,
                      resumed_from=str(result.resumed_from) if result.resumed_from else None)


def _execute(plan: Plan, run_dir: Path | None, resume: bool | Path | None, force: bool, allow_outside: bool,
             log: Callable[[str], None], recipe_file: str | None, callbacks: tuple) -> int:
    from ftlang.backend import finish
    from ftlang.backend.load import base_loader

    run = open_run(plan, run_dir, resume, recipe_file, log)
    if isinstance(run, int):
        return run
    try:
        with recorded_faults(run) as outcome:
            start(run)
            tokenizer, prepared = prepare_data(run, allow_outside)
            model = load_model(run)
            ctx = RunContext(plan=run.plan, run_dir=run.run_dir, model=model, tokenizer=tokenizer, data=prepared,
                             timings=run.timings, load_base=base_loader(run.plan), device=run.device, force=force,
                             log=log)
            baseline(run, ctx)
            result = train_model(run, ctx, callbacks)
            save(run, ctx, result)
            if not run.is_main:
                return 0
            code = int(finish.after_training(ctx))
            run.record.close("done", code, timings=run.timings)
            outcome.code = code
        return outcome.code
    finally:
        leave_process_group()  # every rank, as it returns: no collective runs after the save
