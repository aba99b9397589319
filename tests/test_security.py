"""Security promises: a recipe cannot run code, read outside its project, or reach a non-loopback server.

Static part: the package's own source is parsed (ast) and scanned for every way to execute code or
unpickle data. Dynamic part: recipes that try to escape the project root, to enable remote code or
to break out of the template sandbox, and a server that must bind 127.0.0.1 and bound its inputs.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import os
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ftlang"

# ---------------------------------------------------------------------------- static scan

#: modules whose loading runs code from the data (pickle-style deserializers)
_UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "cloudpickle", "joblib"}
_UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}
#: attribute calls that unpickle: obj.<name>(...)
_UNSAFE_ATTR_CALLS = {"read_pickle", "to_pickle", "loads_pickle"}


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _dotted(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def scan_source(text: str, name: str = "<src>", loader_code: bool = True) -> list[str]:
    """Every unsafe construct in one Python source, as 'name:line: what' strings.

    `loader_code`: the module may load models (backend/, data/, serve): a dict literal setting
    trust_remote_code to True is flagged there too. The compiler (semantic/) may record the recipe's own
    opt-in in the plan; keyword arguments `trust_remote_code=True` are flagged everywhere."""
    found: list[str] = []
    tree = ast.parse(text, name)
    torch_load_aliases = {"torch.load"}
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in _UNSAFE_MODULES:
                    found.append(f"{where}: imports {a.name}")
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if mod in _UNSAFE_MODULES:
                found.append(f"{where}: imports from {node.module}")
            if node.module == "torch":
                for a in node.names:
                    if a.name == "load":
                        torch_load_aliases.add(a.asname or "load")
            if node.module == "builtins" and any(a.name in _UNSAFE_CALLS for a in node.names):
                found.append(f"{where}: imports eval/exec from builtins")
        elif isinstance(node, ast.Call):
            fn = _dotted(node.func)
            leaf = fn.rsplit(".", 1)[-1]
            if isinstance(node.func, ast.Name) and node.func.id in _UNSAFE_CALLS:
                found.append(f"{where}: calls {node.func.id}()")
            if fn in {"builtins.eval", "builtins.exec"}:
                found.append(f"{where}: calls {fn}()")
            if leaf in _UNSAFE_ATTR_CALLS:
                found.append(f"{where}: calls {fn}() (unpickles)")
            if fn in torch_load_aliases and not _is_true(_kw(node, "weights_only")):
                found.append(f"{where}: {fn}() without weights_only=True")
            if fn.endswith("np.load") or fn.endswith("numpy.load"):
                if _is_true(_kw(node, "allow_pickle")):
                    found.append(f"{where}: numpy load with allow_pickle=True")
            if leaf == "load" and fn.startswith("yaml") and _kw(node, "Loader") is None:
                found.append(f"{where}: yaml.load without a safe Loader")
            if _is_true(_kw(node, "trust_remote_code")):
                found.append(f"{where}: trust_remote_code=True literal")
            if _kw(node, "use_safetensors") is not None and isinstance(_kw(node, "use_safetensors"), ast.Constant) \
                    and _kw(node, "use_safetensors").value is False:
                found.append(f"{where}: use_safetensors=False")
            if _is_true(_kw(node, "shell")):
                found.append(f"{where}: subprocess with shell=True")
        elif isinstance(node, ast.Dict) and loader_code:
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == "trust_remote_code" and _is_true(v):
                    found.append(f"{where}: trust_remote_code=True literal")
    found += _scan_text(text, name)
    return found


def _scan_text(text: str, name: str) -> list[str]:
    """The plain grep of the brief, on code tokens only (comments and docstrings may name the danger)."""
    out = []
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME:
            continue
        prev = tokens[i - 1].string if i else ""
        nxt = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if tok.string in {"eval", "exec"} and nxt == "(" and prev not in {".", "def"}:
            out.append(f"{name}:{tok.start[0]}: token {tok.string}(")
        if tok.string == "pickle" and prev != ".":
            out.append(f"{name}:{tok.start[0]}: token pickle")
    return out


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_scanner_catches_every_unsafe_form():
    bad = """
import pickle
from dill import loads
from torch import load as tl
import torch, numpy as np, yaml, subprocess
eval("1")
exec("x = 1")
compile("1", "f", "eval")
torch.load("w.pt")
torch.load("w.pt", weights_only=False)
tl("w.pt")
np.load("a.npy", allow_pickle=True)
yaml.load(open("c"))
AutoModel.from_pretrained("x", trust_remote_code=True)
kwargs = {"trust_remote_code": True}
AutoModel.from_pretrained("x", use_safetensors=False)
subprocess.run("ls", shell=True)
df.read_pickle("x")
"""
    found = scan_source(bad)
    lines = {int(f.split(":")[1]) for f in found}
    assert lines == set(range(2, 19)) - {4, 5}, found  # 4, 5: imports that are fine by themselves
    ok = """
import torch
model.eval()
torch.load("w.pt", weights_only=True)
# eval( and pickle in a comment are fine
'''exec( in a docstring too'''
AutoModel.from_pretrained("x", trust_remote_code=plan.model.source.trust_remote_code)
"""
    assert scan_source(ok) == []


def test_package_has_no_code_execution_or_unpickling():
    files = package_files()
    assert len(files) >= 5, "the package should be there to scan"
    found = [f for p in files
             for f in scan_source(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)),
                                  loader_code="semantic" not in p.parts)]
    assert found == [], "unsafe constructs in ftlang/:\n" + "\n".join(found)


def test_user_templates_use_the_jinja2_sandbox():
    """Every jinja2 Environment that may render user text is a SandboxedEnvironment."""
    offenders = []
    for p in package_files():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = _dotted(node.func)
                if fn.rsplit(".", 1)[-1] in {"Environment", "Template"} and "Sandboxed" not in fn:
                    # the report renders only ftlang's own templates, with autoescape: allowed there
                    if "report" in p.parts and _kw(node, "autoescape") is not None:
                        continue
                    offenders.append(f"{p.relative_to(REPO)}:{node.lineno}: {fn}()")
    assert offenders == [], "\n".join(offenders)


# ---------------------------------------------------------------------------- helpers for CLI tests


def _has_command(name: str) -> bool:
    try:
        importlib.import_module(f"ftlang.commands.{name}")
    except ModuleNotFoundError:
        return False
    return True


def ftlang(*args: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "ftlang", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def json_diags(proc: subprocess.CompletedProcess) -> list[dict]:
    text = proc.stdout.strip()
    assert text.startswith("["), f"expected JSON diagnostics, got:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(text)


TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 400,
    "max_position_embeddings": 512, "tie_word_embeddings": False,
}
ROW = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


def recipe(model: str = 'local("models/tiny")', data: str = 'chat_jsonl("data/chat.jsonl")') -> str:
    return f"""recipe sec {{
  model = {model}
  data d = {data}
  dataset train = d
  split train {{ validation = 10% }}
  method lora {{ r = 8, alpha = 16, targets = [q_proj, v_proj] }}
  train {{ lr = 2e-4, epochs = 1, batch = 2 }}
  eval {{ metrics = [perplexity], gate perplexity < 100 }}
}}
"""


@pytest.fixture
def proj(tmp_path) -> Path:
    """tmp_path/outside/ holds files outside the project; tmp_path/proj is the project root."""
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "models" / "tiny").mkdir(parents=True)
    (root / "models" / "tiny" / "config.json").write_text(json.dumps(TINY_CONFIG))
    (root / "data").mkdir()
    (root / "data" / "chat.jsonl").write_text(json.dumps(ROW) + "\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text(json.dumps(ROW) + "\n")
    (outside / "model").mkdir()
    (outside / "model" / "config.json").write_text(json.dumps(TINY_CONFIG))
    return root


needs_check = pytest.mark.skipif(not _has_command("check"), reason="`ftlang check` not built yet (semantic helper)")


def _errors_on_line(diags: list[dict], line: int) -> list[dict]:
    return [d for d in diags if d["severity"] == "error" and d["line"] == line]


def _check(proj: Path, text: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    (proj / "r.ft").write_text(text)
    proc = ftlang("check", "r.ft", "--format", "json", cwd=proj)
    return proc, json_diags(proc)


@needs_check
def test_the_clean_recipe_checks(proj):
    proc, diags = _check(proj, recipe())
    assert proc.returncode == 0, diags


@needs_check
@pytest.mark.parametrize("path", ["../outside/secret.jsonl", "{abs}", "data/link.jsonl", "data/linkdir/secret.jsonl"])
def test_data_paths_cannot_escape_the_project(proj, path):
    (proj / "data" / "link.jsonl").symlink_to(proj.parent / "outside" / "secret.jsonl")
    (proj / "data" / "linkdir").symlink_to(proj.parent / "outside", target_is_directory=True)
    path = path.replace("{abs}", str(proj.parent / "outside" / "secret.jsonl"))
    proc, diags = _check(proj, recipe(data=f'chat_jsonl("{path}")'))
    assert proc.returncode == 1, diags
    errs = _errors_on_line(diags, 3)
    assert errs, f"no error at the data line for {path}: {diags}"
    assert all(d["code"].startswith("FT2") for d in errs), errs
    assert all(d["help"] for d in errs)


@needs_check
@pytest.mark.parametrize("path", ["../outside/model", "{abs}", "models/link"])
def test_model_paths_cannot_escape_the_project(proj, path):
    (proj / "models" / "link").symlink_to(proj.parent / "outside" / "model", target_is_directory=True)
    path = path.replace("{abs}", str(proj.parent / "outside" / "model"))
    proc, diags = _check(proj, recipe(model=f'local("{path}")'))
    assert proc.returncode == 1, diags
    errs = _errors_on_line(diags, 2)
    assert errs and all(d["code"].startswith("FT2") for d in errs), diags


@needs_check
def test_imports_cannot_escape_the_project(proj):
    (proj.parent / "outside" / "evil.ft").write_text("param lr = 1e-4\n")
    proc, diags = _check(proj, 'import "../outside/evil.ft"\n' + recipe())
    assert proc.returncode == 1, diags
    assert _errors_on_line(diags, 1), diags


@needs_check
def test_trust_remote_code_is_off_unless_the_recipe_says_so_and_check_warns(proj):
    (proj / "r.ft").write_text(recipe())
    proc = ftlang("plan", "r.ft", cwd=proj)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"]["source"]["trust_remote_code"] is False

    text = recipe(model='local("models/tiny", trust_remote_code = true)')
    proc, diags = _check(proj, text)
    warns = [d for d in diags if d["severity"] == "warning" and d["line"] == 2]
    assert warns, f"check must warn on trust_remote_code: {diags}"
    assert any("remote" in (d["message"] + (d["help"] or "")).lower() for d in warns), warns
    plan = ftlang("plan", "r.ft", cwd=proj)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["model"]["source"]["trust_remote_code"] is True


# ---------------------------------------------------------------------------- the server's exposure


def test_serve_binds_loopback_by_default():
    import argparse
    import inspect

    from ftlang.commands import serve as serve_cmd
    from ftlang.serve.api import make_server

    p = argparse.ArgumentParser()
    serve_cmd.add_arguments(p)
    assert p.parse_args(["--base", "x"]).host == "127.0.0.1"
    assert inspect.signature(make_server).parameters["host"].default == "127.0.0.1"


@pytest.fixture(scope="module")
def base_server(tiny_llama_dir):
    pytest.importorskip("torch")
    import threading

    from ftlang.serve.api import make_server
    from ftlang.serve.models import ModelPool

    srv = make_server(ModelPool(str(tiny_llama_dir), {}, max_tokens_cap=16), port=0, quiet=True)
    assert srv.server_address[0] == "127.0.0.1"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _raw_post(port: int, head: str, body: bytes = b"") -> tuple[int, dict]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    payload = json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")
    return status, payload


def test_server_refuses_a_huge_declared_body_without_reading_it(base_server):
    # 100 GB announced, nothing sent: the server must answer 413 at once instead of waiting or allocating
    head = ("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000000000\r\nConnection: close\r\n\r\n")
    status, payload = _raw_post(base_server, head)
    assert status == 413 and payload["error"]["message"]


@pytest.mark.parametrize("max_tokens", [17, 10**9, 0, -1, "64", 2.5, True])
def test_server_bounds_max_tokens(base_server, max_tokens):
    body = json.dumps({"model": "base", "prompt": "hi", "max_tokens": max_tokens}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    status, payload = _raw_post(base_server, head, body)
    assert status == 400, payload
    assert "max_tokens" in payload["error"]["message"]


def test_server_answers_within_the_cap(base_server):
    body = json.dumps({"model": "base", "prompt": "hi", "max_tokens": 16}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    status, payload = _raw_post(base_server, head, body)
    assert status == 200 and payload["usage"]["completion_tokens"] <= 16


# ---------------------------------------------------------------------------- loaders at run time


def test_loaders_never_enable_remote_code_on_their_own(tmp_path):
    """A local model whose config asks for custom code is not executed unless the plan says so."""
    pytest.importorskip("transformers")
    from plan_factory import make_plan

    from ftlang.backend.load import load_model

    model_dir = tmp_path / "models" / "evil"
    model_dir.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    (model_dir / "config.json").write_text(json.dumps({
        **TINY_CONFIG, "model_type": "evil_llama", "auto_map": {"AutoConfig": "evil.EvilConfig",
                                                                "AutoModelForCausalLM": "evil.EvilModel"}}))
    (model_dir / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n"
                                       "from transformers import LlamaConfig as EvilConfig\n")
    (tmp_path / ".git").mkdir()
    plan = make_plan(tmp_path, model={"source": {"kind": "local", "path": "models/evil"}})
    assert plan.model.source.trust_remote_code is False
    with pytest.raises(Exception):  # noqa: B017 - refused one way or another; what matters is below
        load_model(plan)
    assert not marker.exists(), "remote code ran although the plan did not allow it"


def test_weights_are_read_from_safetensors_only(tmp_path):
    """A model directory holding only a pickle checkpoint is refused rather than unpickled."""
    torch = pytest.importorskip("torch")
    from plan_factory import make_plan

    from ftlang.backend.load import load_model

    model_dir = tmp_path / "models" / "pkl"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text(json.dumps(TINY_CONFIG))
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"boom": Boom()}, model_dir / "pytorch_model.bin")
    (tmp_path / ".git").mkdir()
    plan = make_plan(tmp_path, model={"source": {"kind": "local", "path": "models/pkl"}})
    with pytest.raises(Exception):  # noqa: B017
        load_model(plan)
    assert not marker.exists(), "a pickle checkpoint was unpickled"


def test_a_pickle_only_checkpoint_is_refused_even_when_benign(tmp_path):
    torch = pytest.importorskip("torch")
    from plan_factory import make_plan

    from ftlang.backend.load import load_model

    model_dir = tmp_path / "models" / "bin"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text(json.dumps(TINY_CONFIG))
    torch.save({"model.embed_tokens.weight": torch.zeros(400, 64)}, model_dir / "pytorch_model.bin")
    (tmp_path / ".git").mkdir()
    plan = make_plan(tmp_path, model={"source": {"kind": "local", "path": "models/bin"}})
    with pytest.raises(Exception):  # noqa: B017
        load_model(plan)
