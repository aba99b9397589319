"""The product as users install it, never the source tree.

The wheel and the sdist are built once from a copy of the checkout, and each is installed into a fresh
venv with the core dependencies only (no torch). From a folder outside the checkout, with no
PYTHONPATH, the installed `ftlang` checks, plans, formats, explains and prints the schema for every
example and for a recipe importing every stdlib card, and its `ftlang run` names the extra to install.
A slow test installs the wheel with [train,eval] (the pinned CPU torch first) and runs a tiny recipe
end to end, printing no Python warnings unless --verbose.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# the CPU build scripts/setup.sh pins: an unpinned torch would pull a multi-GB CUDA build
TORCH = re.search(r'"(torch==[^"]+)"', (REPO / "scripts" / "setup.sh").read_text()).group(1)
SETUPTOOLS_NOISE = ("Package would be ignored", "SetuptoolsDeprecationWarning", "BuildBackendWarning")


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONWARNINGS", "TQDM_DISABLE",
                        "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", FTLANG_CACHE_DIR=str(tmp / "ftlang-cache"))
    return env


def _sh(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, f"{' '.join(p.args)} -> {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return p


def _source_copy(dest: Path) -> Path:
    """The files a clean clone has (tracked, plus new files not ignored): no build/, .venv or egg-info."""
    p = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                       capture_output=True, text=True)
    if p.returncode == 0:
        for rel in filter(None, p.stdout.split("\0")):
            if (REPO / rel).is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dest / rel)
    else:  # not a git checkout (an unpacked archive)
        shutil.copytree(REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", ".hypothesis"))
    return dest


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """{"wheel": ..., "sdist": ...}, built once through setuptools' PEP 517 hooks (what pip and
    python -m build call), with this venv's setuptools: no network, no build isolation."""
    tmp = tmp_path_factory.mktemp("dist")
    src = _source_copy(tmp / "src")
    out = tmp / "out"
    out.mkdir()
    # (the hooks rewrite sys.argv: read the folder first)
    build = ("import sys; from setuptools import build_meta as b; out = sys.argv[1]; "
             "b.build_sdist(out); b.build_wheel(out)")
    p = _ok(_sh([sys.executable, "-c", build, out], src, _env(tmp)))
    noise = [w for w in SETUPTOOLS_NOISE if w in p.stdout + p.stderr]
    assert not noise, f"setuptools warns while building: {noise}\n{p.stderr[-3000:]}"
    built = {"wheel": sorted(out.glob("ftlang-*.whl")), "sdist": sorted(out.glob("ftlang-*.tar.gz"))}
    assert all(len(v) == 1 for v in built.values()), f"{built}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return {kind: paths[0] for kind, paths in built.items()}


def _venv(path: Path, env: dict[str, str], *installs: list[str]) -> Path:
    """A fresh venv; each `installs` item is one `pip install` (pip of this venv, pointed at the new one)."""
    _ok(_sh([sys.executable, "-m", "venv", "--without-pip", path], path.parent, env))
    for args in installs:
        _ok(_sh([sys.executable, "-m", "pip", "--python", path / "bin" / "python", "install", "-q", *args],
                path.parent, env))
    return path


def _assert_installed_copy(venv: Path, cwd: Path, env: dict[str, str]) -> None:
    p = _ok(_sh([venv / "bin" / "python", "-c", "import ftlang; print(ftlang.__file__)"], cwd, env))
    where = Path(p.stdout.strip()).resolve()
    assert where.is_relative_to(venv.resolve()), f"ftlang imported from {where}, not the venv"
    assert not where.is_relative_to(REPO), where


def _stdlib_recipe(folder: Path) -> Path:
    """One recipe per stdlib model card (importing every stdlib models file), on the examples' data."""
    imports, recipes = [], []
    for f in sorted((REPO / "stdlib" / "models").glob("*.ft")):
        text = f.read_text(encoding="utf-8")
        imports.append(f'import "stdlib/models/{f.name}"')
        for card in re.findall(r"^model_card (\w+)", text, re.M):
            if "arch = encoder" in text:
                body = ('task = classify(labels = [billing, technical, shipping, account, feature_request])\n'
                        'data d = jsonl("data/tickets_train.jsonl") { format = classification }\n'
                        'eval { metrics = [accuracy]\n gate accuracy >= 0.5 }')
            else:
                body = ('data d = jsonl("data/quickstart_train.jsonl") {\n format = instruction\n'
                        ' fields { instruction = "question", output = "answer" }\n}\n'
                        'eval { metrics = [perplexity]\n gate perplexity < 20 }')
            recipes.append(f"recipe with_{card} {{\nmodel = {card}\n{body}\ndataset train = d\n"
                           "split train { validation = 10%, seed = 0 }\n"
                           "method lora { r = 8, alpha = 16, targets = attention }\n"
                           "train { lr = 2e-4, epochs = 1 }\n}")
    path = folder / "stdlib_cards.ft"
    path.write_text("\n".join(imports) + "\n\n" + "\n\n".join(recipes) + "\n", encoding="utf-8")
    return path


# Plans every recipe of every file given in one process of the installed package: one JSON line per
# recipe, with the exit code and what `ftlang plan` printed (a process per recipe costs ~1 s each).
_PLAN_ALL = """
import contextlib, io, json, sys
from ftlang.cli import main
from ftlang.semantic.check import check_file
for f in sys.argv[1:]:
    for recipe in check_file(f).recipes:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["plan", f, "--recipe", recipe])
        print(json.dumps({"file": f, "recipe": recipe, "rc": rc, "plan": out.getvalue(), "err": err.getvalue()}))
"""


@pytest.fixture(scope="module", params=["wheel", "sdist"])
def core_install(request, dists, tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(venv, a work folder outside the checkout holding copies of examples/ and a stdlib recipe, env)."""
    tmp = tmp_path_factory.mktemp(f"core-{request.param}")
    env = _env(tmp)
    venv = _venv(tmp / "venv", env, [str(dists[request.param])])
    work = tmp / "work"
    shutil.copytree(REPO / "examples", work, ignore=shutil.ignore_patterns("registry", "runs", "__pycache__"))
    (work / ".git").mkdir()  # a project root, as a user's repository has
    _stdlib_recipe(work)
    return venv, work, env


def test_core_install_checks_plans_formats_explains(core_install) -> None:
    venv, work, env = core_install
    ftlang = venv / "bin" / "ftlang"
    _assert_installed_copy(venv, work, env)
    assert _ok(_sh([venv / "bin" / "python", "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                   work, env)).stdout.strip() == "None", "the core install must not bring torch"
    files = sorted(p.name for p in work.glob("*.ft"))
    assert "quickstart.ft" in files and "stdlib_cards.ft" in files

    _ok(_sh([ftlang, "check", *files], work, env))
    _ok(_sh([ftlang, "fmt", "stdlib_cards.ft"], work, env))  # generated: lay it out first
    _ok(_sh([ftlang, "fmt", "--check", *files], work, env))
    assert "FT206" in _ok(_sh([ftlang, "explain", "--list"], work, env)).stdout
    schema = json.loads(_ok(_sh([ftlang, "schema"], work, env)).stdout)
    assert schema == json.loads((REPO / "schema" / "plan.schema.json").read_text())
    plan = json.loads(_ok(_sh([ftlang, "plan", "quickstart.ft"], work, env)).stdout)
    assert plan["recipe"]["name"] and plan["sha256"]

    lines = _ok(_sh([venv / "bin" / "python", "-c", _PLAN_ALL, *files], work, env)).stdout.splitlines()
    planned = [json.loads(line) for line in lines]
    cards = len(re.findall(r"^recipe ", (work / "stdlib_cards.ft").read_text(), re.M))
    assert len([p for p in planned if p["file"] == "stdlib_cards.ft"]) == cards >= 10
    for p in planned:
        assert p["rc"] == 0, f"{p['file']} {p['recipe']}: {p['err'][-2000:]}"
        assert json.loads(p["plan"])["recipe"]["name"] == p["recipe"]


def test_core_install_plans_equal_the_checkout_plans(core_install, monkeypatch, capsys) -> None:
    """The installed package compiles every recipe to the very plan the source tree does."""
    from ftlang.cli import main

    venv, work, env = core_install
    files = sorted(p.name for p in work.glob("*.ft"))
    installed = [json.loads(line) for line in
                 _ok(_sh([venv / "bin" / "python", "-c", _PLAN_ALL, *files], work, env)).stdout.splitlines()]
    monkeypatch.chdir(work)
    for p in installed:
        assert main(["plan", p["file"], "--recipe", p["recipe"]]) == 0
        assert p["plan"] == capsys.readouterr().out, f"{p['file']} {p['recipe']}"


def test_core_install_with_a_core_dependency_gone_names_it(core_install) -> None:
    venv, work, env = core_install
    no_lark = "import sys; sys.modules['lark'] = None; from ftlang.cli import main; sys.exit(main(sys.argv[1:]))"
    p = _sh([venv / "bin" / "python", "-c", no_lark, "check", "quickstart.ft"], work, env)
    assert p.returncode == 1, p.stderr
    assert "FT901" in p.stderr and "`lark`" in p.stderr and "pip install 'lark" in p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr


def test_core_install_run_names_the_missing_extra(core_install) -> None:
    venv, work, env = core_install
    p = _sh([venv / "bin" / "ftlang", "run", "quickstart.ft"], work, env)
    assert p.returncode == 1, p.stderr
    assert "pip install 'ftlang[train]'" in p.stderr and "FT901" in p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr


TINY_RECIPE = """\
recipe tiny {
  model = local("models/tiny-llama")
  data d = chat_jsonl("data/chat.jsonl")
  dataset train = d
  split train { validation = 25%, seed = 0 }
  method lora { r = 4, alpha = 8, targets = [q_proj, v_proj] }
  train { lr = 5e-3, max_steps = 2, batch = 4, seed = 0, logging_steps = 1 }
  eval {
    metrics = [perplexity, rouge_l]
    generation { max_new_tokens = 4 }
    max_samples = 2
    gate perplexity < 100000
  }
}
"""
_WARNING_LINE = re.compile(r"\w+Warning: |warnings\.warn\(|it/s\]|de-quantizing|kernels-community")


@pytest.mark.slow
def test_full_install_runs_a_tiny_recipe_quietly(dists, tiny_llama_dir, tmp_path, request) -> None:
    env = _env(tmp_path)
    # ~1.6 GB: not left behind in pytest's kept temp folders
    request.addfinalizer(lambda: shutil.rmtree(tmp_path / "venv", ignore_errors=True))
    venv = _venv(tmp_path / "venv", env, [TORCH], [f"{dists['wheel']}[train,eval]"])
    work = tmp_path / "work"
    (work / ".git").mkdir(parents=True)
    shutil.copytree(tiny_llama_dir, work / "models" / "tiny-llama")
    (work / "data").mkdir()
    with open(work / "data" / "chat.jsonl", "w", encoding="utf-8") as f:
        for i in range(16):
            q, a = [("How do I reset my password?", "Open settings and choose reset."),
                    ("What is the capital of France?", "Paris is the capital of France.")][i % 2]
            f.write(json.dumps({"messages": [{"role": "user", "content": f"{q} {i}"},
                                             {"role": "assistant", "content": a}]}) + "\n")
    (work / "recipe.ft").write_text(TINY_RECIPE, encoding="utf-8")
    _assert_installed_copy(venv, work, env)

    p = _ok(_sh([venv / "bin" / "ftlang", "run", "recipe.ft", "--out", "runs/a"], work, env))
    assert "PASS" in p.stderr + p.stdout
    assert (work / "runs" / "a" / "adapter").is_dir() and (work / "runs" / "a" / "report.json").is_file()
    noise = [line for line in (p.stdout + p.stderr).splitlines() if _WARNING_LINE.search(line)]
    assert not noise, "library noise without --verbose:\n" + "\n".join(noise[:20])
