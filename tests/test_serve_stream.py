"""`ftlang serve` with the official openai client: streaming (SSE chunks, [DONE], usage), batching of
mixed-adapter requests (answers identical to unbatched), bottleneck adapters, cancellation."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("peft")
openai = pytest.importorskip("openai")

PROMPTS = ["How do I reset my password?", "What is the capital of France?", "Tell me about billing.",
           "Why is the app slow?", "Where is my invoice?", "Can I request a feature?", "hello", "The quick brown"]


@pytest.fixture(scope="module")
def adapters(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    """Two random LoRA adapters and one ftlang bottleneck adapter (non-zero up weights)."""
    import torch
    from tiny_models import build_random_lora
    from transformers import AutoModelForCausalLM

    from ftlang.backend.adapters import AdapterConfig, inject_adapters, save_adapter

    root = tmp_path_factory.mktemp("serve-adapters")
    out = {name: build_random_lora(tiny_llama_dir, root / name, 200 + i) for i, name in enumerate(("alpha", "beta"))}
    torch.manual_seed(300)
    model = inject_adapters(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)),
                            AdapterConfig(bottleneck=8, placement=["attention", "ffn"]))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".ftlang_adapter.up." in n:
                p.normal_(0, 0.5)
    save_adapter(model, root / "gamma")
    out["gamma"] = root / "gamma"
    return out


@pytest.fixture(scope="module")
def served(tiny_llama_dir, adapters):
    from ftlang.serve.api import make_server
    from ftlang.serve.models import ModelPool

    pool = ModelPool(str(tiny_llama_dir), {k: str(v) for k, v in adapters.items()}, max_tokens_cap=256,
                     max_batch=16, batch_wait_s=0.02)
    srv = make_server(pool, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", api_key="unused", max_retries=0,
                           timeout=120)
    yield pool, client, srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _chat(client, model: str, q: str, max_tokens: int = 10) -> str:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}],
                                       max_tokens=max_tokens, temperature=0)
    return r.choices[0].message.content


def test_openai_client_streaming_matches_the_plain_answer(served):
    pool, client, _ = served
    plain = client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": PROMPTS[0]}],
                                           max_tokens=12)
    chunks = list(client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": PROMPTS[0]}],
                                                 max_tokens=12, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == plain.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_openai_client_text_completions_stream(served):
    _, client, _ = served
    plain = client.completions.create(model="beta", prompt="The quick brown", max_tokens=8)
    chunks = list(client.completions.create(model="beta", prompt="The quick brown", max_tokens=8, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == plain.choices[0].text
    assert chunks[-1].choices[0].finish_reason == plain.choices[0].finish_reason


def test_stream_holds_back_a_stop_string(served):
    _, client, _ = served
    full = _chat(client, "beta", PROMPTS[1], 16)
    if len(full) < 6:
        pytest.skip("answer too short to hold a stop string")
    stop = full[3:6]
    plain = client.chat.completions.create(model="beta", messages=[{"role": "user", "content": PROMPTS[1]}],
                                           max_tokens=16, stop=stop)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="beta", messages=[{"role": "user", "content": PROMPTS[1]}], max_tokens=16, stop=stop, stream=True)
        if c.choices)
    assert plain.choices[0].message.content == streamed == full[: full.index(stop)]
    assert plain.choices[0].finish_reason == "stop"


def test_mixed_adapter_batch_answers_equal_unbatched(served):
    """16 concurrent requests over base, two LoRA adapters and a bottleneck adapter: one forward pass
    serves several models, and every answer equals the one the same request gets alone."""
    pool, client, _ = served
    jobs = [(["alpha", "beta", "gamma", "base"][i % 4], PROMPTS[i % len(PROMPTS)]) for i in range(16)]
    alone = [_chat(client, m, q) for m, q in jobs]  # one at a time: every batch has one row
    assert len({alone[i] for i in range(4)}) == 4  # the four models answer differently
    before = dict(pool.engine.stats)
    with ThreadPoolExecutor(16) as ex:
        together = list(ex.map(lambda job: _chat(client, *job), jobs))
    assert together == alone
    stats = pool.engine.stats
    assert stats["batches"] - before["batches"] < 16  # requests shared forward passes
    assert stats["largest_batch"] > 1 and stats["most_adapters"] > 1


def test_bottleneck_adapter_answers_like_the_training_module(served, tiny_llama_dir, adapters):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlang.backend.adapters import load_adapter

    _, client, _ = served
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = load_adapter(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), adapters["gamma"]).eval()
    enc = tok("The quick brown", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    want = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    got = client.completions.create(model="gamma", prompt="The quick brown", max_tokens=8, temperature=0)
    assert got.choices[0].text == want


def test_adapter_paths_are_not_model_names(served, adapters):
    _, client, _ = served
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model=str(adapters["alpha"]), prompt="hi", max_tokens=2)
    assert e.value.status_code == 404


def test_client_disconnect_cancels_generation(served):
    """A streaming client that goes away mid-answer stops its generation (not run to max_tokens)."""
    pool, client, port = served
    long = next((q for q in PROMPTS if client.completions.create(
        model="base", prompt=q, max_tokens=200).choices[0].finish_reason == "length"), None)
    if long is None:
        pytest.skip("every prompt ends early on this tiny model")
    before = pool.engine.stats["cancelled"]
    body = json.dumps({"model": "base", "prompt": long, "max_tokens": 200, "stream": True})
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        got = b""
        while b"data: " not in got:  # the stream started
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
    deadline = time.monotonic() + 60
    while pool.engine.stats["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.engine.stats["cancelled"] == before + 1
