"""Every path the checker touches goes through ftlang/semantic/paths.py: a bad one is a positioned
diagnostic with a help line, never an exception (exit 70). One test per class found by fuzzing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from semantic_project import BASE, make_project, variant

from ftlang.semantic.check import check_text
from ftlang.semantic.paths import probe

LONG = "a" * 300


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("paths"), rows=20)
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    (root / "data" / "folder.jsonl").mkdir()
    return root


def errors(proj: Path, text: str, **kw) -> list[tuple[str, int, str]]:
    res = check_text(text, proj / "t.ft", **kw)
    out = [(d.code, d.span.line if d.span else 0, d.help or "") for d in res.diagnostics
           if d.severity.name == "ERROR"]
    assert all(line >= 1 and help_ for _, line, help_ in out), out  # positioned, with a help line
    return out


DATA = 'data d = chat_jsonl("data/chat.jsonl")'


@pytest.mark.parametrize("path,code", [
    (LONG + ".jsonl", "FT221"),                 # OSError ENAMETOOLONG
    ("d/" * 2100 + "x.jsonl", "FT221"),         # the whole path too long
    ("data/\x00.jsonl", "FT221"),               # ValueError: embedded null byte
    ("../../etc/passwd", "FT204"),
    ("data/folder.jsonl", "FT221"),             # a directory where a file is expected
    ("data", "FT221"),
    ("loop_a", "FT221"),                        # ELOOP
    ("loop_a/x.jsonl", "FT221"),
])
def test_bad_data_paths(proj: Path, path: str, code: str) -> None:
    assert [e[0] for e in errors(proj, variant("data d", f'data d = chat_jsonl("{path}")'))] == [code]


@pytest.mark.parametrize("path,code", [
    (LONG + ".ft", "FT221"), ("x\x00.ft", "FT221"), ("stdlib/" + LONG + ".ft", "FT221"),
    ("stdlib/\x00.ft", "FT221"), ("stdlib/../../../etc/passwd", "FT204"), ("data", "FT221"),
    ("stdlib/models", "FT221"), ("loop_a", "FT221"), ("../outside.ft", "FT204"), ("nope.ft", "FT206"),
])
def test_bad_import_paths(proj: Path, path: str, code: str) -> None:
    got = errors(proj, f'import "{path}"\n' + BASE)
    assert [e[0] for e in got] == [code] and got[0][1] == 1


@pytest.mark.parametrize("model,code", [
    (f'local("{LONG}")', "FT221"), ('local("x\x00")', "FT221"), ('local("data/chat.jsonl")', "FT221"),
    ('local("loop_a")', "FT221"), (f'gguf("{LONG}.gguf")', "FT221"), ('gguf("data")', "FT221"),
    (f'hf("{LONG}")', "FT212"), (f"{'x' * 300}_7b", "FT201"),
])
def test_bad_model_paths(proj: Path, model: str, code: str) -> None:
    assert code in [e[0] for e in errors(proj, variant("model", f"model = {model}"))]


def test_registry_must_be_a_directory(proj: Path) -> None:
    text = BASE.rstrip()[:-1] + '  export { register "m" { registry = "data/chat.jsonl" } }\n}\n'
    assert [e[0] for e in errors(proj, text)] == ["FT221"]


@pytest.mark.parametrize("line", [f"epochs = {'9' * 400}", f"batch = {'9' * 30}", f"seed = -{'9' * 30}",
                                  f"lr = {'9' * 400}", f"max_steps = {'9' * 5000}"])
def test_huge_numbers_are_range_errors(proj: Path, line: str) -> None:
    # epochs = 99…9 raised OverflowError converting to float in bind_train
    text = BASE.replace("train { lr = 2e-4, epochs = 1, batch = 2 }", "train { " + line + " }")
    codes = [e[0] for e in errors(proj, text)]
    assert codes and set(codes) <= {"FT103", "FT006"}, codes


@pytest.mark.parametrize("value", ["9" * 400, "9" * 400 + "GB", "1e999", "-1e999"])
def test_huge_set_values(proj: Path, value: str) -> None:
    text = "param e = 1\n" + BASE.replace("epochs = 1", "epochs = e")
    assert [e[0] for e in errors(proj, text, sets={"e": value})] in (["FT103"], ["FT102"])


def test_probe_never_raises(proj: Path) -> None:
    assert probe(proj / "loop_a").kind == "bad"
    assert probe(proj / LONG).kind == "bad"
    assert probe("x\x00").kind == "bad"
    assert probe(proj / "nope" / "x").kind == "missing"
    assert probe(proj / "data").kind == "dir" and probe(proj / "data" / "chat.jsonl").kind == "file"


@pytest.mark.parametrize("cmd", ["check", "plan"])
def test_cli_long_and_looping_paths_are_usage_errors(proj: Path, cmd: str) -> None:
    for arg in (str(proj / LONG), str(proj / "loop_a")):
        r = subprocess.run([sys.executable, "-m", "ftlang", cmd, arg], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


def test_fmt_long_path_is_a_diagnostic(proj: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ftlang", "fmt", "--check", str(proj / LONG)], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert r.returncode == 1 and "FT016" in r.stderr and "Traceback" not in r.stderr, r.stderr
