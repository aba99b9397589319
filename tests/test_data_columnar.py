"""The columnar data stage: skeleton template rendering, flat-column tokenization, Arrow tables, packing."""

from __future__ import annotations

import json
import random

import pytest

from ftlang.data.templates import STDLIB_TEMPLATES, ChatRenderer, content_verbatim, stdlib_template

pytest.importorskip("pyarrow")


def _conversations(n: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    words = ["why", "is", "the", "sky", "blue", "?", "ok", "  padded  ", "", "line\n\nbreak", "x\x00y"]
    out = []
    for _ in range(n):
        msgs = [{"role": "system", "content": rng.choice(["Be brief.", " sys ", ""])}] if rng.random() < 0.4 else []
        for _t in range(rng.randint(1, 3)):
            for role in ("user", "assistant"):
                msgs.append({"role": role, "content": " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))})
        out.append(msgs)
    return out


@pytest.mark.parametrize("name", STDLIB_TEMPLATES)
def test_skeleton_rendering_equals_jinja(name):
    r = ChatRenderer(stdlib_template(name), name, "<s>", "</s>")
    convs = _conversations(200)
    fast = r.spans_batch(convs)
    assert fast == [r.spans(m) for m in convs]
    assert any(sk.ok for sk in r._skeletons.values())  # the skeleton path was taken, not only jinja2


def test_templates_that_look_at_content_stay_on_jinja():
    looks = ["{% for m in messages %}{{ m.content | upper }}{% endfor %}",
             "{% for m in messages %}{% if m.content.endswith('?') %}Q: {% endif %}{{ m.content }}{% endfor %}",
             "{% for m in messages %}{% if m['content'] is string %}{{ m['content'] }}{% endif %}{% endfor %}",
             "{% set c = messages[0]['content'] %}{% if c == 'x' %}X{% endif %}{% for m in messages %}"
             "{{ m.content }}{% endfor %}"]
    for source in looks:
        assert not content_verbatim(source)
        r = ChatRenderer(source, "custom")
        convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": "a"}] for q in ("why?", "x", "y?")]
        assert r.spans_batch(convs) == [r.spans(m) for m in convs]
    assert content_verbatim("{% for m in messages %}{{ '<' + m['content'] | trim + '>' }}{% endfor %}")


def test_token_tables_round_trip_through_arrow(tmp_path):
    import numpy as np

    from ftlang.data.packing import PackedRows, pack_bins, pack_rows
    from ftlang.data.tables import Chunk, TableWriter, TokenRows, read_bins, read_table, write_bins

    rng = np.random.default_rng(0)
    chunks = []
    for _ in range(3):
        lens = rng.integers(1, 9, size=5)
        ids = rng.integers(0, 100, size=int(lens.sum()))
        chunks.append(Chunk(ids, lens, np.where(ids % 3 == 0, -100, ids)))
    w = TableWriter(tmp_path / "t.arrow", per_row_label=False)
    for c in chunks:
        w.write(c)
    w.close()
    back = read_table(tmp_path / "t.arrow")
    memory = TokenRows.of(chunks)
    assert len(back) == 15 and back == memory and back[-1] == memory[14] and back[3:5] == memory[3:5]
    assert back[0]["attention_mask"] == [1] * len(back[0]["input_ids"])
    assert list(back.lengths()) == [back.length(i) for i in range(15)]
    bins = pack_bins(back.lengths(), 16)
    write_bins(tmp_path / "b.arrow", bins)
    packed = PackedRows(back, *read_bins(tmp_path / "b.arrow"))
    assert packed == pack_rows(list(memory), 16)
    assert list(packed.lengths()) == [len(b["input_ids"]) for b in packed]
    assert sorted(i for b in bins for i in b) == list(range(15))  # every row in exactly one bin
    assert all(sum(back.length(i) for i in b) <= 16 for b in bins)


def test_worker_processes_give_the_same_tables_as_one(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from plan_factory import make_plan, step, write_jsonl
    from tiny_models import build_tokenizer
    from transformers import AutoTokenizer

    from ftlang.data import prepare as prep

    build_tokenizer(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    (tmp_path / ".git").mkdir()
    rows = [{"instruction": f"What is {i} plus {i}?", "input": "", "output": f"{2 * i}" + " really" * (i % 7)}
            for i in range(60)]
    rows[7]["instruction"] = "x " * 400  # truncated to nothing trainable: a row problem found in a worker
    write_jsonl(tmp_path / "data" / "d.jsonl", rows)
    monkeypatch.setattr(prep, "CHUNK_ROWS", 8)  # 8 batches, so the workers share them
    quiet = {"log": lambda _m: None}
    on_error = {"mode": "skip"}
    got = {}
    for workers in (1, 3):
        plan = make_plan(tmp_path, data={"d": {"path": "data/d.jsonl", "on_error": on_error}},
                         pipelines={"train": ("d", [step("to_chat", system="S")])},
                         train={"data_workers": workers, "max_seq_len": 96, "packing": True})
        got[workers] = prep.prepare(plan, tok, cache_dir=tmp_path / f"c{workers}", **quiet)
    one, three = got[1], got[3]
    assert one.cache_key == three.cache_key  # workers never change the data, nor its cache key
    assert len(one.train) > 1 and one.train == three.train and one.validation == three.validation
    assert {**one.stats, "quarantine": ""} == {**three.stats, "quarantine": ""}
    assert one.stats["tokens"]["train"]["skipped"] + one.stats["tokens"]["validation"]["skipped"] == 1
    assert one.stats["conservation"]
    q = [json.loads(x) for x in one.quarantine_path.read_text().splitlines()]
    assert [(r["line"], r["code"]) for r in q] == [(8, "FT618")]  # file:line survives the workers


def test_cached_rerun_reuses_file_hashes_until_the_file_changes(tmp_path):
    pytest.importorskip("transformers")
    from plan_factory import make_plan, write_jsonl
    from tiny_models import build_tokenizer
    from transformers import AutoTokenizer

    from ftlang.data.prepare import prepare

    build_tokenizer(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    (tmp_path / ".git").mkdir()
    rows = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(20)]
    write_jsonl(tmp_path / "data" / "d.jsonl", rows)
    plan = make_plan(tmp_path)
    first = prepare(plan, tok, cache_dir=tmp_path / "c", log=lambda _m: None)
    memo = json.loads((tmp_path / "c" / "fingerprints.json").read_text())
    assert list(memo.values())[0]["sha256"] == first.fingerprints["d"]
    again = prepare(plan, tok, cache_dir=tmp_path / "c", log=lambda _m: None)
    assert again.cache_hit and again.validation_rows == first.validation_rows and len(again.validation_rows) == 2
    write_jsonl(tmp_path / "data" / "d.jsonl", rows[:-1] + [{"instruction": "q", "input": "", "output": "changed"}])
    changed = prepare(plan, tok, cache_dir=tmp_path / "c", log=lambda _m: None)
    assert not changed.cache_hit and changed.fingerprints["d"] != first.fingerprints["d"]
