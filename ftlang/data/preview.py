"""`ftlang data preview`: rows after every step, and the rendered training text with the masked
(untrained) part marked: dim on a terminal, else [[double brackets]]."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from ftlang.data.rows import public
from ftlang.data.steps import PipelineRunner
from ftlang.plan import CONVERTED, Plan


def _show(rows: list[dict], n: int) -> list[str]:
    out = []
    for r in rows[:n]:
        meta = r.get("_meta", {})
        tag = f"{meta.get('source', '?')}:{meta.get('line', '?')}"
        flags = [k for k in ("augmented", "mixed") if meta.get(k)]
        out.append(f"    {tag}{' (' + ', '.join(flags) + ')' if flags else ''}  "
                   f"{json.dumps(public(r), ensure_ascii=False)[:300]}")
    return out


def step_lines(plan: Plan, runner: PipelineRunner, name: str, n: int) -> list[str]:
    """The pipeline's counts and its first rows at the source and after every step, from one run (the runner
    taps the first rows as they pass, so a large dataset runs chunk by chunk here too)."""
    pipe = plan.datasets.pipelines[name]
    ds = runner.run(name)
    tapped = runner.tapped.get(name, {})
    st = ds.stats
    fmt = plan.data[pipe.source].format if pipe.source in plan.data else runner.resolve(pipe.source).fmt
    lines = [f"dataset {name} = {pipe.source}: {st['input']} rows ({fmt})", *_show(tapped.get(0, []), n)]
    for k, step in enumerate(pipe.steps):
        fmt = CONVERTED.get(step.op, fmt)
        args = step.args.model_dump()
        lines += [f"  | {step.op}({', '.join(f'{k}={v}' for k, v in args.items() if k != 'expr')}"
                  f"{'expr' if 'expr' in args else ''}): {st['steps'][k]['rows_out']} rows ({fmt})",
                  *_show(tapped.get(k + 1, []), n)]
    return lines


def source_lines(plan: Plan, runner: PipelineRunner) -> list[str]:
    """Per source read: rows read, kept and skipped; skipped rows go to a quarantine file, named here
    (rows are never dropped silently, in a preview either)."""
    from ftlang.data.cache import write_quarantine

    quarantine = [q for s in runner.sources.values() for q in s.quarantined]
    path = plan.resolve(f".ftlang-cache/data/quarantine-{plan.recipe.name or 'recipe'}.jsonl")
    if quarantine:
        write_quarantine(path, quarantine)
    lines = ["sources:"]
    for name, s in runner.sources.items():
        skipped = len(s.problems)
        line = f"  {name} ({s.display}): read {s.read}, kept {runner.source_stats(name)['kept']}, skipped {skipped}"
        if skipped:
            line += f" (on_error = skip) → quarantined in {path}"
        lines.append(line)
    return lines


def marked_text(tokenizer, row: dict, color: bool) -> str:
    """Decoded tokens, trained runs as they are, masked runs dimmed or [[bracketed]]."""
    ids, labels = row["input_ids"], row["labels"]
    out, run, masked = [], [], None

    def flush():
        if run:
            text = tokenizer.decode(run)
            out.append((f"\x1b[2m{text}\x1b[0m" if color else f"[[{text}]]") if masked else text)

    for tok, lab in zip(ids, labels, strict=True):
        m = lab == -100
        if m != masked:
            flush()
            run, masked = [], m
        run.append(tok)
    flush()
    return "".join(out)


def preview(plan: Plan, tokenizer, n: int = 3, *, allow_outside: bool = False, color: bool = False,
            log: Callable[[str], None] = lambda _m: None) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ftlang-preview-") as spill:
        runner = PipelineRunner(plan, allow_outside=allow_outside, log=log, spill=Path(spill), taps=n)
        return _preview(plan, runner, tokenizer, n, color, log)


def _preview(plan: Plan, runner: PipelineRunner, tokenizer, n: int, color: bool,
             log: Callable[[str], None]) -> list[str]:
    lines: list[str] = []
    for name in plan.datasets.pipelines:
        lines += step_lines(plan, runner, name, n)
        lines.append("")
    lines += [*source_lines(plan, runner), ""]
    if tokenizer is None:
        lines.append("(no tokenizer: the model's tokenizer could not be loaded, so the training text is not shown)")
        return lines
    train = runner.run("train")
    rows = train.rows[:n]
    from ftlang.data.prepare import _Builder, _renderer

    builder = _Builder(plan, tokenizer, _renderer(plan, tokenizer), runner, log)
    encoded = builder.encode("train", rows, train.fmt)
    legend = "dim" if color else "[[double brackets]]"
    lines.append(f"training text of the first {len(encoded)} train rows (masked, untrained text in {legend}):")
    for row in encoded:
        if isinstance(row["labels"], int):
            lines.append(f"  label {row['labels']}: {tokenizer.decode(row['input_ids'])}")
        else:
            lines += ["  ---", *("  " + x for x in marked_text(tokenizer, row, color).splitlines())]
    return lines
