"""scripts/setup.sh is quiet for a newcomer: one line per step, the installers' output in a log that is
printed only when a step fails."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _step(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = f'set -euo pipefail\n. "{REPO}/scripts/step.sh"\nSTEP_LOG="{tmp_path}/setup.log"\n{body}\n'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


def test_a_noisy_step_prints_one_line_and_logs_the_rest(tmp_path) -> None:
    p = _step(tmp_path, 'step "noisy" bash -c "echo lots of output; echo a warning wall >&2"\necho after')
    assert p.returncode == 0
    assert p.stdout == "  noisy ... ok\nafter\n" and p.stderr == ""
    log = (tmp_path / "setup.log").read_text()
    assert "lots of output" in log and "a warning wall" in log


def test_a_failing_step_shows_its_output_and_stops(tmp_path) -> None:
    p = _step(tmp_path, 'step "broken" bash -c "echo the reason >&2; exit 3"\necho not reached')
    assert p.returncode == 3
    assert p.stdout == "  broken ... failed\n"
    assert "the reason" in p.stderr and "not reached" not in p.stdout


def test_an_optional_step_returns_its_status(tmp_path) -> None:
    p = _step(tmp_path, 'STEP_OPTIONAL=1 step "maybe" bash -c "echo x >&2; exit 4" || echo "skipped $?"')
    assert p.returncode == 0 and p.stdout == "  maybe ... failed\nskipped 4\n" and "x" not in p.stderr


def test_every_install_in_setup_goes_through_step() -> None:
    lines = (REPO / "scripts" / "setup.sh").read_text().splitlines()
    installs = [line for line in lines if re.search(r"pip install|apt-get install", line)]
    assert len(installs) >= 4
    for i, line in enumerate(lines):
        if line in installs:
            prev = lines[i - 1] if i else ""
            assert re.match(r"\s*(STEP_OPTIONAL=1 )?step ", line) or prev.rstrip().endswith("\\") \
                and re.match(r"\s*(STEP_OPTIONAL=1 )?step ", prev), line
