"""bench/RESULTS.md: replace one `## name` section, keep every other section as it is."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, section: str, path: Path = RESULTS) -> None:
    """`section` starts with `## name`; it replaces the old one (moved to the end) or is appended."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    chunks = text.split("\n## ")
    kept = [c for c in chunks[1:] if not c.startswith(name + "\n")]
    body = "".join("## " + c.rstrip("\n") + "\n\n" for c in kept)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(chunks[0].rstrip("\n") + "\n\n" + body + section, encoding="utf-8")
    tmp.replace(path)
