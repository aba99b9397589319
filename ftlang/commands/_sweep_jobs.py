"""`ftlang plan FILE --sweep-jobs DIR`: a sweep's points as Slurm array jobs.

    DIR/plans/p0.json, p1.json, …   each point's sealed plan (`ftlang run --plan` runs it alone)
    DIR/sweep.points.json           the selection and the points (`ftlang report sweep DIR` reads it)
    DIR/sweep.sbatch                `sbatch DIR/sweep.sbatch`: one array task per point, run into DIR/<point>/

A task whose point directory already holds a run resumes it, so a requeued or resubmitted array continues.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ftlang.atomic import write_text
from ftlang.report.sweep import write_spec

SCRIPT = """#!/bin/bash
#SBATCH --job-name={job}
#SBATCH --array=0-{last}
#SBATCH --output={logs}/%A_%a.out
# ftlang sweep {sha}: one task per point; afterwards `ftlang report sweep {dir}` compares them.
set -euo pipefail
POINTS=({points})
POINT="${{POINTS[$SLURM_ARRAY_TASK_ID]}}"
PLAN={dir}/plans/"$POINT".json
OUT={dir}/"$POINT"
cd {root}
if [ -f "$OUT/plan.json" ]; then
  exec ftlang run --plan "$PLAN" --resume "$OUT"
fi
exec ftlang run --plan "$PLAN" --out "$OUT"
"""


def write_jobs(sweep, out: Path) -> Path:
    """Write the point plans, the spec and the array script into `out`; returns the script's path."""
    out = out.resolve()
    for sub in ("logs", "plans"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for p in sweep.points:
        write_text(out / "plans" / f"{p.name}.json", p.plan.to_json(indent=2) + "\n")
    write_spec(out, sweep.recipe, sweep.metric, sweep.goal, [(p.name, p.params) for p in sweep.points], sweep.sha256)
    root = sweep.points[0].plan.recipe.project_root
    script = SCRIPT.format(job=shlex.quote(f"ftlang-{sweep.recipe}"), last=len(sweep.points) - 1,
                           logs=shlex.quote(str(out / "logs")), sha=sweep.short_hash,
                           points=" ".join(p.name for p in sweep.points), dir=shlex.quote(str(out)),
                           root=shlex.quote(root))
    write_text(out / "sweep.sbatch", script, mode=0o755)
    return out / "sweep.sbatch"
