"""Serving over real HTTP on 127.0.0.1: two LoRA adapters answer differently; OpenAI shapes; 4xx errors."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def adapters(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    from tiny_models import build_random_lora

    root = tmp_path_factory.mktemp("adapters")
    return {name: build_random_lora(tiny_llama_dir, root / name, 100 + i) for i, name in enumerate(("alpha", "beta"))}


@pytest.fixture(scope="module")
def server(tiny_llama_dir, adapters):
    from ftlang.serve.api import make_server
    from ftlang.serve.models import ModelPool

    pool = ModelPool(str(tiny_llama_dir), {k: str(v) for k, v in adapters.items()}, max_tokens_cap=32)
    srv = make_server(pool, "127.0.0.1", 0, quiet=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _request(port: int, method: str, path: str, body=None, raw: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    payload = json.loads(resp.read().decode())
    conn.close()
    return resp.status, payload


CHAT = [{"role": "user", "content": "How do I reset my password?"}]


def test_models_and_health(server):
    status, body = _request(server, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["base", "alpha", "beta"]
    assert _request(server, "GET", "/health") == (200, {"status": "ok", "models": ["base", "alpha", "beta"]})


def test_two_adapters_answer_differently(server):
    answers = {}
    for name in ("alpha", "beta", "base"):
        status, body = _request(server, "POST", "/v1/chat/completions",
                                {"model": name, "messages": CHAT, "max_tokens": 12})
        assert status == 200, body
        assert body["object"] == "chat.completion" and body["model"] == name
        choice = body["choices"][0]
        assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
        assert 0 < body["usage"]["completion_tokens"] <= 12
        answers[name] = choice["message"]["content"]
    assert len(set(answers.values())) == 3, answers
    # greedy: the same request gives the same answer, even after switching adapters
    _, again = _request(server, "POST", "/v1/chat/completions", {"model": "alpha", "messages": CHAT, "max_tokens": 12})
    assert again["choices"][0]["message"]["content"] == answers["alpha"]


def test_completions_endpoint(server):
    outs = []
    for name in ("alpha", "beta"):
        status, body = _request(server, "POST", "/v1/completions", {"model": name, "prompt": "The quick brown", "max_tokens": 8})
        assert status == 200 and body["object"] == "text_completion"
        outs.append(body["choices"][0]["text"])
    assert outs[0] != outs[1]


def test_concurrent_requests_keep_adapters_apart(server):
    expected = {}
    for name in ("alpha", "beta"):
        expected[name] = _request(server, "POST", "/v1/completions",
                                  {"model": name, "prompt": "hello", "max_tokens": 6})[1]["choices"][0]["text"]
    results: list[tuple[str, str]] = []

    def worker(name):
        body = _request(server, "POST", "/v1/completions", {"model": name, "prompt": "hello", "max_tokens": 6})[1]
        results.append((name, body["choices"][0]["text"]))

    threads = [threading.Thread(target=worker, args=(n,)) for n in ["alpha", "beta"] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all(text == expected[name] for name, text in results)


@pytest.mark.parametrize("path,body,status,code", [
    ("/v1/chat/completions", {"messages": CHAT}, 400, "missing_field"),
    ("/v1/chat/completions", {"model": "gamma", "messages": CHAT}, 404, "model_not_found"),
    ("/v1/chat/completions", {"model": "alpha"}, 400, "missing_field"),
    ("/v1/chat/completions", {"model": "alpha", "messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid_value"),
    ("/v1/chat/completions", {"model": "alpha", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     400, "invalid_value"),
    ("/v1/chat/completions", {"model": "alpha", "messages": CHAT, "max_tokens": 10_000}, 400, "max_tokens_too_large"),
    ("/v1/chat/completions", {"model": "alpha", "messages": CHAT, "max_tokens": "ten"}, 400, "invalid_type"),
    ("/v1/chat/completions", {"model": "alpha", "messages": CHAT, "stream": "yes"}, 400, "invalid_type"),
    ("/v1/chat/completions", {"model": "alpha", "messages": CHAT, "stream_options": {"include_usage": True}}, 400,
     "invalid_value"),
    ("/v1/chat/completions", {"model": "alpha", "messages": CHAT, "n": 2}, 400, "unsupported_parameter"),
    ("/v1/chat/completions", {"model": "alpha", "messages": CHAT, "stop": 3}, 400, "invalid_type"),
    ("/v1/completions", {"model": "alpha", "prompt": "hi " * 600}, 400, "context_length_exceeded"),
    ("/v1/completions", {"model": "alpha", "prompt": ""}, 400, "invalid_value"),
    # a request names a model served since start-up, never a path: nothing else is ever loaded
    ("/v1/completions", {"model": "../alpha", "prompt": "hi"}, 404, "model_not_found"),
    ("/v1/completions", {"model": "/etc/passwd", "prompt": "hi"}, 404, "model_not_found"),
    ("/v1/completions", {"model": "alpha"}, 400, "missing_field"),
    ("/v1/nothing", {"model": "alpha"}, 404, "not_found"),
])
def test_bad_requests_get_json_4xx(server, path, body, status, code):
    got, payload = _request(server, "POST", path, body)
    assert got == status
    assert payload["error"]["code"] == code and payload["error"]["message"] and payload["error"]["type"]


def test_other_methods_get_json_405(server):
    status, payload = _request(server, "DELETE", "/v1/models")
    assert status == 405 and payload["error"]["code"] == "method_not_allowed"


def test_bad_json_and_too_large_body(server):
    status, payload = _request(server, "POST", "/v1/chat/completions", raw=b"{not json")
    assert status == 400 and payload["error"]["code"] == "invalid_json"
    status, payload = _request(server, "POST", "/v1/chat/completions", raw=b"[1, 2]")
    assert status == 400 and payload["error"]["code"] == "invalid_json"
    big = json.dumps({"model": "alpha", "prompt": "x" * (1 << 20)}).encode()
    status, payload = _request(server, "POST", "/v1/completions", raw=big)
    assert status == 413 and payload["error"]["code"] == "request_too_large"
    assert _request(server, "GET", "/health")[0] == 200  # still serving


def test_serve_command_binds_localhost(tiny_llama_dir, adapters, tmp_path):
    """`ftlang serve` as a real process, adapters from a registry and from --adapter."""
    from ftlang.registry import Registry

    Registry(tmp_path / "reg").publish("gamma", {"adapter": adapters["beta"]}, plan_hash="h")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftlang", "serve", "--base", str(tiny_llama_dir), "--adapter", f"alpha={adapters['alpha']}",
         "--registry", str(tmp_path / "reg"), "--port", "0", "--quiet", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving base, gamma, alpha on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.rsplit(":", 1)[1])
        status, body = _request(port, "GET", "/v1/models")
        assert status == 200 and {m["id"] for m in body["data"]} == {"base", "alpha", "gamma"}
        status, body = _request(port, "POST", "/v1/chat/completions", {"model": "gamma", "messages": CHAT, "max_tokens": 4})
        assert status == 200 and body["choices"][0]["message"]["content"] is not None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_bad_adapter_spec_is_a_diagnostic():
    from ftlang.diagnostics import DiagnosticError
    from ftlang.serve.models import parse_adapter

    assert parse_adapter("a=b/c") == ("a", "b/c")
    for bad in ("nopath", "=x", "base=x"):
        with pytest.raises(DiagnosticError) as e:
            parse_adapter(bad)
        assert e.value.diagnostics[0].code == "FT840"


def test_text_content_parts_read_like_a_string(server):
    parts = [{"role": "user", "content": [{"type": "text", "text": "How do I reset "}, {"type": "text", "text": "my password?"}]}]
    a = _request(server, "POST", "/v1/chat/completions", {"model": "alpha", "messages": parts, "max_tokens": 6})
    b = _request(server, "POST", "/v1/chat/completions", {"model": "alpha", "messages": CHAT, "max_tokens": 6})
    assert a[0] == b[0] == 200 and a[1]["choices"][0]["message"] == b[1]["choices"][0]["message"]
