"""Reproducibility reports: report.json (the facts), rendered to report.md and report.html.

Everything a report shows is first collected into one JSON-able dict (`collect`), saved as
report.json, so `ftlang report show` can re-render and `ftlang report diff` can compare runs
without the model. HTML is rendered by jinja2 with autoescape on: recipe text, data values and
metric names are always text, never markup. Torch-free: versions come from package metadata.
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ftlang.allocator import active_allocator
from ftlang.atomic import write_text
from ftlang.report.charts import charts

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "ftlang")
MAX_RECIPE_CHARS = 1_000_000
TEMPLATES = Path(__file__).parent / "templates"


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(root: str | Path) -> dict[str, Any] | None:
    """HEAD of the recipe's repository and whether the tree has uncommitted changes (None if no repo)."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True,
                                text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def read_recipe(plan: Any) -> str | None:
    root = Path(plan.recipe.project_root).resolve()
    path = (root / plan.recipe.file).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace")[:MAX_RECIPE_CHARS]


def _plain(value: Any) -> Any:
    """JSON round trip: any stats object becomes plain data; NaN/inf become None."""
    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): fix(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        return v

    return fix(json.loads(json.dumps(value, default=lambda o: getattr(o, "__dict__", str(o)))))


def tokens_per_s(timings: dict, history: list[dict]) -> float | None:
    for key in ("train_tokens_per_s", "tokens_per_s"):
        if timings.get(key):
            return float(timings[key])
    rates = [r["tokens_per_s"] for r in history if isinstance(r.get("tokens_per_s"), (int, float))]
    return sum(rates) / len(rates) if rates else None


def collect(ctx: Any, summary: dict) -> dict:
    """The report's facts from a run's context (backend.context.RunContext: read by attribute, since the
    report sits below the backend that calls it)."""
    plan = ctx.plan
    peak = ctx.peak_memory_bytes
    res = plan.resources
    estimate = res.memory.peak_bytes
    data = ctx.data
    return _plain({
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run_dir": str(ctx.run_dir),
        "recipe": {"name": plan.recipe.name, "file": plan.recipe.file, "source": read_recipe(plan),
                   "extends": plan.recipe.extends, "params": plan.recipe.params},
        "plan_hash": plan.sha256,
        "plan": plan.model_dump(mode="json"),
        "method": plan.method.kind,
        "seed": plan.train.seed,
        "data": {"fingerprints": dict(data.fingerprints or {}), "stats": data.stats or {}},
        "environment": {**versions(), "platform": platform.platform(), "device": ctx.device},
        "git": git_commit(plan.recipe.project_root),
        "history": list(ctx.history),
        "timings": dict(ctx.timings),
        "tokens_per_s": tokens_per_s(ctx.timings, ctx.history),
        "memory": {"peak_bytes": peak, "estimate_bytes": estimate,
                   "ratio": (peak / estimate) if peak and estimate else None,
                   "estimate_over_measured": (estimate / peak) if peak and estimate else None,
                   "measured_as": ("torch.cuda.max_memory_allocated" if ctx.device == "cuda" else
                                   "peak RSS in training above the RSS when it started, + the model's tensors; "
                                   f"allocator: {active_allocator()}"),
                   "seq_len": res.seq_len, "seq_len_source": res.seq_len_source},
        "time": _time_vs_estimate(res, ctx.timings),
        "forced": bool(summary.get("forced")),
        **{k: summary.get(k) for k in (
            "metrics_before", "metrics_after", "gates", "gates_passed", "overfitting", "forgetting",
            "forgetting_on", "forgetting_perplexity", "export", "registry", "exit_code", "error", "samples",
            "checkpoint")},
    })


def _time_vs_estimate(res: Any, timings: dict) -> dict | None:
    """The training time the plan estimated (semantic/throughput.py) against the measured one: the
    optimizer steps' wall seconds (like the estimate, no set-up, evaluations or saves), or the whole
    training stage for runs that predate that timing."""
    if res.time is None:
        return None
    measured = timings.get("train_steps") or timings.get("train")
    return {"estimate_s": res.time.seconds, "low_s": res.time.low_seconds, "high_s": res.time.high_seconds,
            "tokens_source": res.time.tokens_source, "measured_s": measured,
            "measured_as": "optimizer steps" if timings.get("train_steps") else "training stage",
            "stage_s": timings.get("train"),
            "estimate_over_measured": (res.time.seconds / measured) if measured else None,
            "usd": res.cost.usd if res.cost is not None else None}


# ---------------------------------------------------------------------------- rendering helpers


def _metric_rows(report: dict) -> list[dict]:
    before = report.get("metrics_before") or {}
    after = report.get("metrics_after") or {}
    rows = []
    for name in dict.fromkeys([*after, *before]):
        if name == "forgetting_perplexity":
            continue
        b, a = before.get(name), after.get(name)
        delta = a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        rows.append({"name": name, "before": b, "after": a, "delta": delta})
    return rows


def _stats_rows(stats: Any) -> list[dict]:
    """Row counts as table rows: one per dataset/source ({name, counts}), two levels deep at most.

    The data stage's stats nest (sources → d → read/kept/skipped); skipped rows are the quarantined
    ones, so they are shown beside the kept counts.
    """
    out = []
    if not isinstance(stats, dict):
        return out
    for name, v in stats.items():
        if not isinstance(v, dict):
            out.append({"name": name, "counts": [("value", v)]})
            continue
        flat = [(k, x) for k, x in v.items() if not isinstance(x, (dict, list))]
        if flat:
            out.append({"name": name, "counts": flat})
        for sub, w in v.items():
            if isinstance(w, dict):
                counts = [(k, x) for k, x in w.items() if not isinstance(x, (dict, list))]
                if counts:
                    out.append({"name": f"{name}.{sub}", "counts": counts})
    return out


def num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def size(v: Any) -> str:
    if not isinstance(v, (int, float)) or v is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return f"{v:.1f} {unit}" if unit != "B" else f"{int(v)} B"
        v /= 1024
    return str(v)


def md_text(v: Any) -> str:
    """Inline Markdown text that reads as itself both raw and rendered: a `<` that could open an HTML
    tag and a `&` that could start an entity are backslash-escaped (CommonMark), so `ppl < 12`
    stays as written; table pipes and backticks are escaped, newlines flattened."""
    text = str(v)
    text = re.sub(r"([\\`|])", r"\\\1", text)
    text = re.sub(r"<(?=[A-Za-z/!?])", r"\\<", text)
    text = re.sub(r"&(?=#?\w+;)", r"\\&", text)
    return " ".join(text.splitlines())


def md_fence(text: Any) -> str:
    """A backtick fence longer than any backtick run inside the text, so it cannot be closed early."""
    longest = max((len(m) for m in re.findall(r"`+", str(text))), default=0)
    return "`" * max(4, longest + 1)


def _env(autoescape: bool):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=autoescape,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["num"] = num
    env.filters["size"] = size
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)
    env.filters["md"] = md_text
    env.filters["fence"] = md_fence
    return env


def render(report: dict) -> tuple[str, str]:
    """(markdown, html) of a collected report."""
    context = {
        "r": report, "metrics": _metric_rows(report), "stats": _stats_rows(report["data"].get("stats")),
        "curves": charts(report.get("history") or []),
    }
    md = _env(False).get_template("report.md.j2").render(**context)
    html = _env(True).get_template("report.html.j2").render(**context)
    return md, html


def write_files(run_dir: Path, report: dict) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    md, html = render(report)
    write_text(run_dir / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_text(run_dir / "report.md", md)
    write_text(run_dir / "report.html", html)
    return run_dir / "report.md", run_dir / "report.html"


def write_report(ctx: Any, summary: dict) -> tuple[Path, Path]:
    return write_files(Path(ctx.run_dir), collect(ctx, summary))


def regenerate(run_dir: str | Path) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    return write_files(run_dir, report)
