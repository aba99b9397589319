"""prepare(): steps, split, templates and masking, the EOS check, packing, cache, quarantine."""

from __future__ import annotations

import json

import pytest
from plan_factory import make_plan, source, step, write_jsonl

from ftlang.data.formats import to_chat, to_instruction
from ftlang.data.prepare import prepare
from ftlang.diagnostics import DiagnosticError
from ftlang.plan import BoolExpr, CallExpr, CompareExpr, ConstExpr, NameExpr

pytest.importorskip("transformers")

QUIET = {"log": lambda _m: None}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from tiny_models import build_tokenizer
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp("tok")
    build_tokenizer(d)
    return AutoTokenizer.from_pretrained(str(d))


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"instruction": f"What is {i}?", "output": f"It is {i}.", "input": ""} for i in range(start, start + n)]


def test_round_trip_instruction_chat_instruction():
    cases = [{"instruction": "Sum", "input": "1 2\n\nand 3", "output": "6"},
             {"instruction": "Hi\n\nthere", "input": "", "output": "Hello"},
             {"instruction": "Q", "input": "ctx", "output": "A\n\nB"}]
    for row in cases:
        assert to_instruction(to_chat(row, "instruction", system="S"), "chat") == row
        assert to_instruction(to_chat(row, "instruction"), "chat") == row


def test_to_instruction_multi_turn_names_row(project, tok):
    chat = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                         {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    write_jsonl(project / "data" / "c.jsonl", [chat["messages"] and {"messages": chat["messages"][:2]}, chat])
    plan = make_plan(project, data={"c": source("c", "data/c.jsonl", format="chat")},
                     pipelines={"train": ("c", [step("to_instruction")])}, split=None)
    with pytest.raises(DiagnosticError) as e:
        prepare(plan, tok, **QUIET)
    d = e.value.diagnostics[0]
    assert d.code == "FT615" and d.span.file.endswith("c.jsonl") and d.span.line == 2 and "multi-turn" in d.message


def test_split_is_deterministic_and_disjoint(project, tok):
    write_jsonl(project / "data" / "d.jsonl", rows(200))
    plan = make_plan(project, split={"validation": 0.2, "seed": 7})
    a = prepare(plan, tok, cache_dir=project / "c1", **QUIET)
    b = prepare(plan, tok, cache_dir=project / "c2", **QUIET)
    assert a.validation_rows == b.validation_rows and len(a.validation_rows) == 40
    val = {json.dumps(r, sort_keys=True) for r in a.validation_rows}
    train_texts = {tuple(r["input_ids"]) for r in a.train}
    assert not train_texts & {tuple(r["input_ids"]) for r in a.validation}
    assert len(train_texts) == 160 and a.stats["conservation"]
    other = prepare(make_plan(project, split={"validation": 0.2, "seed": 8}), tok, cache_dir=project / "c3", **QUIET)
    assert {json.dumps(r, sort_keys=True) for r in other.validation_rows} != val


def test_steps_dedupe_filter_sample_mix_counts(project, tok):
    data = rows(30) + rows(5) + [{"instruction": "WHAT is 1 ?", "output": "it is 1", "input": ""}]
    write_jsonl(project / "data" / "d.jsonl", data)
    write_jsonl(project / "data" / "g.jsonl", [{"messages": [{"role": "user", "content": f"hi {i}"},
                                                            {"role": "assistant", "content": "hello"}]}
                                              for i in range(50)])
    long_output = CompareExpr(op=">", left=CallExpr(fn="len", args=[NameExpr(name="output")]), right=ConstExpr(value=8))
    expr = BoolExpr(kind="and", left=long_output, right=CompareExpr(op="!=", left=NameExpr(name="instruction"),
                                                                      right=ConstExpr(value="What is 12?")))
    steps = [step("dedupe", mode="exact"), step("dedupe", mode="normalized"),
             step("filter", expr=expr.model_dump(mode="json")), step("sample", n=15, seed=1),
             step("to_chat", system="Be brief."), step("mix", other="g", ratio=0.2)]
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl"), "g": source("g", "data/g.jsonl", format="chat")},
                     pipelines={"train": ("d", steps)}, split=None)
    p = prepare(plan, tok, **QUIET)
    st = p.stats["pipelines"]["train"]
    # 36 read; 5 exact dupes; 1 normalized dupe ("WHAT is 1 ?" ~ "What is 1?"); "It is N." is longer than
    # 8 chars for N >= 10 only, and "What is 12?" is out: 19 kept; sampled to 15; mix adds 0.2*15/0.8 → 4
    assert st["deduped"] == 6 and st["input"] == 36
    assert st["filtered"] == 11 and st["sampled_out"] == 4 and st["mixed"] == 4 and st["output"] == 19
    assert st["conservation"] and p.stats["conservation"] and len(p.train) == 19
    assert p.validation is None


def test_labels_mask_all_but_assistant_and_train_on_all(project, tok):
    write_jsonl(project / "data" / "d.jsonl", rows(3))
    plan = make_plan(project, pipelines={"train": ("d", [step("to_chat", system="Sys")])}, split=None)
    p = prepare(plan, tok, **QUIET)
    row = p.train[0]
    trained = tok.decode([t for t in row["labels"] if t != -100])
    assert trained == "It is 0.<|im_end|>\n"
    assert tok.decode(row["input_ids"]).startswith("<|im_start|>system\nSys<|im_end|>")
    everything = prepare(make_plan(project, split=None, train={"train_on": "all"}), tok, **QUIET).train[0]
    assert everything["labels"] == everything["input_ids"]


@pytest.mark.parametrize("name", ["chatml", "llama2", "mistral", "alpaca"])
def test_stdlib_templates_keep_eos_in_labels(project, tok, name):
    write_jsonl(project / "data" / "d.jsonl", rows(4))
    p = prepare(make_plan(project, split=None, train={"template": name}), tok, **QUIET)
    for r in p.train:
        assert tok.eos_token_id in [t for t in r["labels"] if t != -100]


def test_eos_check_fails_loudly_when_template_masks_it(project, tok):
    # the end-of-turn token is emitted when the NEXT turn starts: the assistant span never holds it
    bad = ("{% for m in messages %}{% if not loop.first %}<|im_end|>\n{% endif %}"
           "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}{% endfor %}"
           "{% if add_generation_prompt %}<|im_end|>\n<|im_start|>assistant\n{% endif %}")
    tok2 = tok.__class__.from_pretrained(tok.name_or_path)
    tok2.chat_template = bad
    write_jsonl(project / "data" / "d.jsonl", rows(3))
    with pytest.raises(DiagnosticError) as e:
        prepare(make_plan(project, split=None), tok2, **QUIET)
    d = e.value.diagnostics[0]
    assert d.code == "FT617" and "end-of-turn" in d.message and d.span.file.endswith("d.jsonl") and d.span.line == 1
    with pytest.raises(DiagnosticError) as e:  # llama3's <|eot_id|> is not a token of this tokenizer
        prepare(make_plan(project, split=None, train={"template": "llama3"}), tok, **QUIET)
    assert e.value.diagnostics[0].code == "FT617"


def test_a_base_tokenizer_without_a_chat_template(project, tok):
    """A base model's tokenizer (no chat_template) trains on completion rows; chat rows need a named template
    (FT621 at the train block), and `template = "chatml"` renders them."""
    base = tok.__class__.from_pretrained(tok.name_or_path)
    base.chat_template = None
    write_jsonl(project / "data" / "t.jsonl", [{"text": f"Plain text number {i}."} for i in range(6)])
    text = make_plan(project, data={"t": source("t", "data/t.jsonl", format="completion")}, split=None,
                     pipelines={"train": ("t", [])})
    p = prepare(text, base, **QUIET)
    assert len(p.train) == 6 and p.stats["conservation"]
    write_jsonl(project / "data" / "d.jsonl", rows(4))
    with pytest.raises(DiagnosticError) as e:
        prepare(make_plan(project, split=None), base, **QUIET)
    d = e.value.diagnostics[0]
    assert d.code == "FT621" and "no chat_template" in d.message and 'template = "chatml"' in d.help
    assert prepare(make_plan(project, split=None, train={"template": "chatml"}), base, **QUIET).train


def test_truncation_counted_and_empty_after_truncation_is_row_error(project, tok):
    data = rows(3) + [{"instruction": "word " * 200, "output": "short", "input": ""}]
    write_jsonl(project / "data" / "d.jsonl", data)
    with pytest.raises(DiagnosticError) as e:
        prepare(make_plan(project, split=None, train={"max_seq_len": 40}), tok, **QUIET)
    assert e.value.diagnostics[0].code == "FT618" and e.value.diagnostics[0].span.line == 4
    skip = source("d", "data/d.jsonl", on_error={"mode": "skip", "max_rows": 1})
    run_dir = project / "run"
    p = prepare(make_plan(project, data={"d": skip}, split=None, train={"max_seq_len": 40}), tok, run_dir=run_dir,
                **QUIET)
    assert len(p.train) == 3 and p.quarantine_path == run_dir / "quarantine.jsonl"
    q = [json.loads(x) for x in p.quarantine_path.read_text().splitlines()]
    assert q[0]["line"] == 4 and q[0]["code"] == "FT618" and q[0]["source"] == "d"
    write_jsonl(project / "data" / "d.jsonl", rows(3) + [{"instruction": "word " * 5, "output": "x " * 60}])
    p = prepare(make_plan(project, split=None, train={"max_seq_len": 40}), tok, **QUIET)
    assert p.stats["tokens"]["train"]["truncated"] == 1 and max(len(r["input_ids"]) for r in p.train) == 40


def test_cache_hits_when_unchanged_and_misses_on_any_change(project, tok):
    write_jsonl(project / "data" / "d.jsonl", rows(30))
    plan = make_plan(project)
    first = prepare(plan, tok, **QUIET)
    again = prepare(plan, tok, **QUIET)
    assert not first.cache_hit and again.cache_hit and again.cache_key == first.cache_key
    assert again.train == first.train and again.validation == first.validation
    assert again.validation_rows == first.validation_rows
    entry = project / ".ftlang-cache" / "data" / first.cache_key
    assert (entry / "train.arrow").is_file() and (entry / "validation.arrow").is_file()
    changes = [
        make_plan(project, train={"max_seq_len": 512}),
        make_plan(project, train={"template": "chatml"}),
        make_plan(project, train={"packing": True}),
        make_plan(project, train={"train_on": "all"}),
        make_plan(project, split={"validation": 0.2}),
        make_plan(project, pipelines={"train": ("d", [step("to_chat", system="x")])}),
    ]
    keys = {first.cache_key}
    for changed in changes:
        p = prepare(changed, tok, **QUIET)
        assert not p.cache_hit
        keys.add(p.cache_key)
    assert len(keys) == len(changes) + 1
    write_jsonl(project / "data" / "d.jsonl", rows(30, start=1))  # the source bytes change
    assert not prepare(plan, tok, **QUIET).cache_hit
    tok2 = tok.__class__.from_pretrained(tok.name_or_path)
    tok2.chat_template = "{# v2 #}" + tok.chat_template
    assert not prepare(plan, tok2, **QUIET).cache_hit


def test_packing_loss_equals_unpadded(project, tiny_llama_dir):
    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), attn_implementation="sdpa").eval()
    rng = random.Random(0)
    data = [{"instruction": " ".join(rng.choice(["how", "do", "I", "reset", "my", "password"]) for _ in range(rng.randint(1, 12))),
             "output": " ".join(rng.choice(["open", "settings", "and", "choose", "reset"]) for _ in range(rng.randint(1, 20))),
             "input": ""} for _ in range(12)]
    write_jsonl(project / "data" / "d.jsonl", data)
    padded = prepare(make_plan(project, split=None, train={"max_seq_len": 256}), tok, **QUIET)
    packed = prepare(make_plan(project, split=None, train={"max_seq_len": 256, "packing": True}), tok, **QUIET)
    assert packed.packed and len(packed.train) < len(padded.train)
    with torch.no_grad():
        loss_padded = model(**padded.collator()(padded.train)).loss
        batch = packed.collator()(packed.train)
        assert batch["attention_mask"].shape[1:] == (1, batch["input_ids"].shape[1], batch["input_ids"].shape[1])
        loss_packed = model(**batch).loss
    assert abs(loss_padded.item() - loss_packed.item()) < 1e-4
    # boundaries come back from position_ids when a caller drops seq_lens
    with torch.no_grad():
        no_lens = [{k: v for k, v in r.items() if k != "seq_lens"} for r in packed.train]
        assert abs(model(**packed.collator()(no_lens)).loss.item() - loss_padded.item()) < 1e-4
    # the packed collator also takes unpacked rows (the validation set)
    with torch.no_grad():
        assert abs(model(**packed.collator()(padded.train)).loss.item() - loss_padded.item()) < 1e-4


def test_eval_packing_keeps_validation_loss(project, tiny_llama_dir):
    """eval { packing }: the validation set in bins with 4D masks gives the same loss and perplexity."""
    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlang.backend.evaluate import evaluate_model

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), attn_implementation="sdpa").eval()
    rng = random.Random(1)
    words = ["how", "do", "I", "reset", "my", "password", "open", "settings"]
    data = [{"instruction": " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))),
             "output": " ".join(rng.choice(words) for _ in range(rng.randint(1, 20))), "input": ""}
            for _ in range(40)]
    write_jsonl(project / "data" / "d.jsonl", data)
    split = {"validation": 0.5, "seed": 3}
    plain_plan = make_plan(project, split=split, train={"max_seq_len": 256})
    packed_plan = make_plan(project, split=split, train={"max_seq_len": 256}, eval={"packing": True})
    plain = prepare(plain_plan, tok, **QUIET)
    packed = prepare(packed_plan, tok, **QUIET)
    assert packed.cache_hit and packed.cache_key == plain.cache_key  # the cache stays that of the unpacked data
    assert packed.eval_packed and not packed.packed and len(packed.validation) < len(plain.validation)
    assert sum(len(b["seq_lens"]) for b in packed.validation) == len(plain.validation)  # no row dropped
    a = evaluate_model(plain_plan, model, tok, plain, ["loss", "perplexity"])
    b = evaluate_model(packed_plan, model, tok, packed, ["loss", "perplexity"])
    assert abs(a["loss"] - b["loss"]) <= 1e-4 and abs(a["perplexity"] - b["perplexity"]) <= 1e-4 * a["perplexity"]
    # the Trainer's evaluation batches (eval_collator) over the whole set: the same token-mean loss
    with torch.no_grad():
        loss_plain = model(**plain.collator()(list(plain.validation))).loss.item()
        batch = packed.eval_collator()(list(packed.validation))
        assert batch["attention_mask"].dim() == 4
        assert abs(model(**batch).loss.item() - loss_plain) <= 1e-4
    assert packed.collator()(list(packed.train))["attention_mask"].dim() == 2  # training stays unpacked


def test_classification_rows(project, tiny_bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    write_jsonl(project / "data" / "c.jsonl", [{"text": f"ticket {i}", "label": ["bug", "billing", "other"][i % 3]}
                                               for i in range(12)])
    plan = make_plan(project, data={"c": source("c", "data/c.jsonl", format="classification")},
                     model={"arch": "encoder", "family": "bert", "task": {"kind": "classify",
                                                                         "labels": ["bug", "billing", "other"]}})
    p = prepare(plan, tok, **QUIET)
    assert {r["labels"] for r in p.train} <= {0, 1, 2} and p.validation_rows[0].keys() == {"text", "label"}
    batch = p.collator()(p.train[:4])
    assert batch["labels"].shape == (4,) and batch["input_ids"].shape[0] == 4
    write_jsonl(project / "data" / "c.jsonl", [{"text": "x", "label": "bug"}, {"text": "y", "label": "feature"}])
    with pytest.raises(DiagnosticError) as e:
        prepare(plan, tok, **QUIET)
    assert e.value.diagnostics[0].code == "FT616" and e.value.diagnostics[0].span.line == 2


def test_forgetting_and_extra_pipelines_are_tokenized(project, tok):
    write_jsonl(project / "data" / "d.jsonl", rows(10))
    write_jsonl(project / "data" / "g.jsonl", rows(4, start=100))
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl"), "g": source("g", "data/g.jsonl")},
                     pipelines={"train": ("d", []), "probe": ("d", [step("sample", n=2, seed=0)])},
                     eval={"forgetting_on": "g"})
    p = prepare(plan, tok, **QUIET)
    assert set(p.extra) == {"probe", "g"} and len(p.extra["g"]) == 4 and len(p.extra["probe"]) == 2
    assert "messages" in p.extra_rows["g"][0]


def test_hf_dataset_source_uses_datasets_loader(project, tok):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows(12)).save_to_disk(str(project / "data" / "hfds"))
    write_jsonl(project / "data" / "raw" / "train.jsonl", rows(6) + [{"instruction": "q", "output": ""}])
    plan = make_plan(project, data={
        "a": source("a", kind="hf_dataset", hf_name="data/hfds", hf_split="train", hf_revision="main"),
        "b": source("b", kind="hf_dataset", hf_name="data/raw", hf_split="train",
                    on_error={"mode": "skip", "max_rows": 1})},
        pipelines={"train": ("a", [step("mix", other="b", ratio=0.2)])})
    p = prepare(plan, tok, **QUIET)
    assert p.fingerprints["a"].startswith("data/hfds@main:") and p.stats["sources"]["a"]["read"] == 12
    assert p.stats["sources"]["b"]["skipped"] == 1 and p.stats["conservation"]
    bad = make_plan(project, data={"a": source("a", kind="hf_dataset", hf_name="data/missing", hf_split="train")})
    with pytest.raises(DiagnosticError) as e:
        prepare(bad, tok, **QUIET)
    assert e.value.diagnostics[0].code == "FT622"


def test_csv_json_parquet_sources(project, tok):
    import csv

    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    (project / "data").mkdir()
    with open(project / "data" / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["q", "a"])
        w.writerows([[f"question {i}, with comma", f"answer {i}"] for i in range(5)])
    (project / "data" / "d.json").write_text(json.dumps([{"q": f"j{i}", "a": "x"} for i in range(4)], indent=1))
    pq.write_table(pa.Table.from_pylist([{"q": f"p{i}", "a": "y"} for i in range(3)]), project / "data" / "d.parquet")
    fields = {"instruction": "q", "output": "a"}
    plan = make_plan(project, data={n: source(n, f"data/d.{n}", kind=n, fields=fields) for n in ("csv", "json", "parquet")},
                     pipelines={"train": ("csv", [step("mix", other="json", ratio=0.4)]), "extra": ("parquet", [])},
                     split=None)
    p = prepare(plan, tok, **QUIET)
    assert p.stats["sources"]["csv"]["kept"] == 5 and len(p.extra["extra"]) == 3
    assert "with comma" in tok.decode(p.train[0]["input_ids"])
