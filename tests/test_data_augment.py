"""augment(...): nlpaug ops on offline WordNet, seq2seq back-translation / paraphrase on a tiny T5."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_factory import make_plan, step, write_jsonl

from ftlang.data.steps import PipelineRunner
from ftlang.diagnostics import DiagnosticError

pytest.importorskip("nlpaug")
pytest.importorskip("transformers")

SENTENCES = ["How do I reset my password quickly", "The invoice shows a wrong amount for the monthly plan",
             "My account login fails with an error", "Shipping was slow and the package arrived damaged",
             "Please explain the refund policy for annual subscriptions", "The application crashes when I open settings"]


def _rows(n: int = 6):
    return [{"instruction": s, "output": f"Answer {i % 6}.", "input": ""} for i, s in enumerate(SENTENCES[:n] * 3)]


def _run(project, ops, copies=1, seed=0, n=6, **plan_kw):
    write_jsonl(project / "data" / "d.jsonl", _rows(n))
    plan = make_plan(project, pipelines={"train": ("d", [step("dedupe", mode="exact"),
                                                         step("augment", ops=ops, copies=copies, seed=seed)])},
                     split=None, **plan_kw)
    return PipelineRunner(plan, log=lambda _m: None).run("train")


def test_wordnet_lexnames_and_tagger():
    from ftlang.data.wordnet import LEXNAMES, nltk_data_dir, pos_tag

    if not Path("/usr/share/wordnet/data.noun").is_file():
        pytest.skip("wordnet-base is not installed")
    assert len(LEXNAMES) == 45
    lex = (nltk_data_dir() / "corpora" / "wordnet" / "lexnames").read_text().splitlines()
    assert lex[3] == "03\tnoun.Tops\t1" and lex[44] == "44\tadj.ppl\t3"
    assert dict(pos_tag(["the", "dog", "quickly", "xyzzy"])) == {"the": "XX", "dog": "NN", "quickly": "RB",
                                                                 "xyzzy": "XX"}


@pytest.mark.parametrize("op", ["synonyms", "swap", "delete", "char_noise"])
def test_nlpaug_ops_mark_rows_and_reproduce(project, op):
    if op == "synonyms" and not Path("/usr/share/wordnet/data.noun").is_file():
        pytest.skip("wordnet-base is not installed")
    ops = [{"op": op, "p": 0.3}]
    a = _run(project, ops, copies=2, seed=3)
    b = _run(project, ops, copies=2, seed=3)
    originals = [r for r in a.rows if not r["_meta"].get("augmented")]
    copies = [r for r in a.rows if r["_meta"].get("augmented")]
    assert len(originals) == 6 and 0 < len(copies) <= 12 and a.stats["augmented"] == len(copies)
    assert [r["instruction"] for r in a.rows] == [r["instruction"] for r in b.rows]  # seeded
    assert all(r["output"].startswith("Answer") for r in copies)  # targets stay as written
    assert {r["_meta"]["origin"] for r in copies} <= {__import__("ftlang.data.rows", fromlist=["x"]).content_hash(r)
                                                      for r in originals}
    c = _run(project, ops, copies=2, seed=4)
    assert [r["instruction"] for r in c.rows] != [r["instruction"] for r in a.rows]


def test_augmented_rows_never_enter_validation(project):
    from ftlang.data.steps import split_rows

    ds = _run(project, [{"op": "swap", "p": 0.5}], copies=2)
    train, val, dropped = split_rows(ds.rows, 0.34, seed=0)
    assert val and not any(r["_meta"].get("augmented") for r in val)
    held = {r["instruction"] for r in val}
    assert dropped > 0 and not any(r["_meta"].get("origin") in
                                   {__import__("ftlang.data.rows", fromlist=["x"]).content_hash(v) for v in val}
                                   for r in train)
    assert len(train) + len(val) + dropped == len(ds.rows) and not held & {r["instruction"] for r in train}


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> Path:
    """A 2-layer T5 built from a config with a BPE tokenizer trained on the test sentences."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    out = tmp_path_factory.mktemp("tiny-t5")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(SENTENCES * 4 + ["translate English to Turkish: paraphrase:"], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(str(out))
    config = T5Config(vocab_size=len(fast), d_model=32, d_ff=64, d_kv=16, num_layers=2, num_decoder_layers=2,
                      num_heads=2, pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id,
                      decoder_start_token_id=fast.pad_token_id)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(str(out), safe_serialization=True)
    return out


@pytest.mark.parametrize("op", [{"op": "back_translate", "to": "tr"}, {"op": "paraphrase"}])
def test_seq2seq_augmentation_loads_real_model(project, tiny_t5, op):
    key = "via" if op["op"] == "back_translate" else "model"
    ops = [{**op, key: str(tiny_t5), "p": 0.1, "max_new_tokens": 6}]
    a = _run(project, ops, n=2)
    b = _run(project, ops, n=2)
    assert [r["instruction"] for r in a.rows] == [r["instruction"] for r in b.rows]
    assert a.stats["augmented"] == len([r for r in a.rows if r["_meta"].get("augmented")])
    assert all(r["_meta"]["ops"] == [op["op"]] for r in a.rows if r["_meta"].get("augmented"))


def test_missing_seq2seq_model_is_a_diagnostic(project):
    with pytest.raises(DiagnosticError) as e:
        _run(project, [{"op": "paraphrase", "model": "models/nope", "p": 0.1}])
    assert e.value.diagnostics[0].code == "FT623" and "models/nope" in e.value.diagnostics[0].message
