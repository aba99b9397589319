"""`ftlang check/plan/fmt/explain/schema` never import torch, transformers, peft, datasets or bitsandbytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from semantic_project import make_project

HEAVY = ("torch", "transformers", "peft", "datasets", "bitsandbytes", "accelerate")

#: runs the CLI in-process, then reports which heavy top-level packages ended up in sys.modules
_WRAPPER = """
import json, sys
from ftlang.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY_NAMES))
sys.stderr.write('\\nHEAVY=' + json.dumps(heavy) + '\\n')
sys.exit(rc or 0)
""".replace("HEAVY_NAMES", repr(HEAVY))


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("light"))


COMMANDS = [
    ["check", "support_bot.ft", "faq.ft", "base.ft"],
    ["check", "reject_unknown_key.ft", "--format", "json"],
    ["plan", "support_bot.ft"],
    ["fmt", "--check", "support_bot.ft"],
    ["explain", "FT301"],
    ["explain", "--list"],
    ["schema"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_no_heavy_imports(proj: Path, argv: list[str]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], cwd=proj, capture_output=True, text=True,
                       env=env, timeout=120)
    marker = [line for line in p.stderr.splitlines() if line.startswith("HEAVY=")]
    assert marker, p.stderr[-2000:]
    assert json.loads(marker[-1][len("HEAVY="):]) == [], argv
    assert p.returncode in (0, 1), p.stderr[-2000:]


_LSP = """
import json, sys
from pathlib import Path
pytest_root = Path(sys.argv[1])
from ftlang.lsp.features import build
from ftlang.lsp import completion, hover, symbols
from ftlang.commands.check import data_diagnostics
server = build()
st = server.state
st.set_roots([str(pytest_root)])
path = pytest_root / "support_bot.ft"
doc = st.open(path.as_uri(), path.read_text(), 1)
a = st.analyze(doc.uri)
hover.hover(a, a.text.index("qlora"))
completion.complete(a, doc, a.text.index("model =") + 8)
symbols.inlay_hints(a, "utf-16")
data_diagnostics(a.result.plans.values())
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY_NAMES))
print('HEAVY=' + json.dumps(heavy))
""".replace("HEAVY_NAMES", repr(HEAVY))


def test_language_server_is_torch_free(proj: Path) -> None:
    pytest.importorskip("pygls")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", _LSP, str(proj)], cwd=proj, capture_output=True, text=True,
                       env=env, timeout=120)
    marker = [line for line in p.stdout.splitlines() if line.startswith("HEAVY=")]
    assert marker, p.stderr[-2000:]
    assert json.loads(marker[-1][len("HEAVY="):]) == []
