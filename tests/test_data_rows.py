"""The bounded-memory front half (data/rowtable.py): a pipeline of per-row steps over a source runs chunk by
chunk into rows on disk, with exact provenance and counts, the same split, and the same tokens as the
list-of-dicts path it replaces."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import pytest
from plan_factory import make_plan, source, step

from ftlang.data import steps as steps_mod
from ftlang.data.prepare import prepare
from ftlang.data.steps import PipelineRunner
from ftlang.plan import CallExpr, CompareExpr, ConstExpr, NameExpr

pytest.importorskip("pyarrow")
QUIET = {"log": lambda _m: None}
LONG = CompareExpr(op=">", left=CallExpr(fn="len", args=[NameExpr(name="output")]), right=ConstExpr(value=3))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    pytest.importorskip("transformers")
    from tiny_models import build_tokenizer
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp("tok")
    build_tokenizer(d)
    return AutoTokenizer.from_pretrained(str(d))


def _lines(n: int) -> list[str]:
    """n rows: line 13 is broken JSON, line 21 repeats line 2, line 9 is filtered (output too short)."""
    out = []
    for i in range(1, n + 1):
        if i == 13:
            out.append('{"instruction": "broken", "output": ')
        elif i == 21:
            out.append(out[1])
        elif i == 9:
            out.append(json.dumps({"instruction": "short", "output": "ab"}))
        else:
            out.append(json.dumps({"instruction": f"What is {i} plus {i % 7}?", "input": "" if i % 3 else f"c{i}",
                                   "output": f"It is {i + i % 7}, of course."}))
    return out


def _plan(project, n: int = 60, head: int | None = None, **kw):
    """dedupe | filter | to_chat over _lines(n); head(n) before to_chat when given."""
    (project / "data").mkdir(exist_ok=True)
    (project / "data" / "d.jsonl").write_text("\n".join(_lines(n)) + "\n")
    steps = [step("dedupe", mode="exact"), step("filter", expr=LONG), step("to_chat", system="Be brief.")]
    if head is not None:
        steps.insert(2, step("head", n=head))
    return make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_fraction": 0.5})},
                     pipelines={"train": ("d", steps)}, **kw)


def test_chunks_keep_provenance_and_conservation(project, tok, monkeypatch):
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 4)  # line 13 and the duplicate (21 of 2) in other chunks
    plan = _plan(project, split={"validation": 0.25, "seed": 1})
    runner = PipelineRunner(plan, log=lambda _m: None, spill=project / "spill")
    ds = runner.run("train")
    assert type(ds.rows).__name__ == "RowTable"
    lines = [r["_meta"]["line"] for r in ds.rows]
    assert lines == [i for i in range(1, 61) if i not in (9, 13, 21)]  # every kept row knows its file line
    src, st = runner.source_stats("d"), ds.stats
    assert (src["read"], src["skipped"], st["deduped"], st["filtered"], st["output"]) == (60, 1, 1, 1, 57)
    assert src["conservation"] and st["conservation"]
    assert [s["rows_in"] for s in st["steps"]] == [59, 58, 57]
    q = runner.sources["d"].quarantined
    assert [(x["line"], x["code"]) for x in q] == [(13, "FT601")]

    p = prepare(plan, tok, cache_dir=project / "cache", **QUIET)
    assert p.stats["conservation"] and p.stats["sources"]["d"]["read"] == 60
    assert len(p.train) + len(p.validation) == 57 == p.stats["split"]["train"] + p.stats["split"]["validation"]
    quarantined = [json.loads(x) for x in p.quarantine_path.read_text().splitlines()]
    assert [(x["line"], x["source"]) for x in quarantined] == [(13, "d")]
    assert not (p.quarantine_path.parent / "rows").exists()  # the spilled rows are not kept in the entry


def test_a_row_error_in_a_later_chunk_names_its_line(project, tok, monkeypatch):
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 4)
    (project / "data").mkdir()
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(30)]
    rows[17]["messages"] += [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    (project / "data" / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = make_plan(project, data={"c": source("c", "data/c.jsonl", format="chat")},
                     pipelines={"train": ("c", [step("to_instruction")])}, split=None)
    from ftlang.diagnostics import DiagnosticError

    with pytest.raises(DiagnosticError) as e:
        prepare(plan, tok, cache_dir=project / "cache", **QUIET)
    d = e.value.diagnostics[0]
    assert d.code == "FT615" and d.span.file.endswith("c.jsonl") and d.span.line == 18


def _digest(p) -> dict:
    def h(x) -> str:
        return hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()[:16]
    return {"train": h([[r["input_ids"], r["labels"]] for r in p.train]),
            "validation": h([[r["input_ids"], r["labels"]] for r in p.validation]),
            "validation_rows": h(list(p.validation_rows)), "n": [len(p.train), len(p.validation)]}


#: computed with the list-of-dicts front half (main at 9c5ff8b), before rows were spilled to disk
BEFORE = {"train": "4dd4158ed9048fba", "validation": "ab9f52b06e091e4c", "validation_rows": "42842e26cab24f92",
          "n": [158, 39]}


def test_same_rows_and_tokens_as_the_list_path(project, tok, monkeypatch):
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 7)
    plan = _plan(project, n=200, split={"validation": 0.2, "seed": 3})
    chunked = prepare(plan, tok, cache_dir=project / "c1", **QUIET)
    monkeypatch.setattr(PipelineRunner, "_chunked", lambda self, pipe: False)
    listed = prepare(plan, tok, cache_dir=project / "c2", **QUIET)
    assert _digest(chunked) == _digest(listed) == BEFORE
    assert chunked.stats["split"] == listed.stats["split"]
    assert chunked.stats["pipelines"] == listed.stats["pipelines"]


def test_head_counts_across_chunks_like_the_list_path(project, tok, monkeypatch):
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 7)  # head(30) fills in the fifth chunk
    plan = _plan(project, n=60, head=30, split=None)
    runner = PipelineRunner(plan, log=lambda _m: None, spill=project / "spill")
    ds = runner.run("train")
    assert type(ds.rows).__name__ == "RowTable"
    listed = PipelineRunner(plan, log=lambda _m: None).run("train")
    assert [r["_meta"]["line"] for r in ds.rows] == [r["_meta"]["line"] for r in listed.rows]
    assert [r["messages"] for r in ds.rows] == [r["messages"] for r in listed.rows]
    assert len(ds.rows) == 30 and ds.stats == listed.stats
    st = ds.stats
    assert st["sampled_out"] == 57 - 30 and st["conservation"] and runner.source_stats("d")["read"] == 60
    assert [(s["op"], s["rows_in"], s["rows_out"]) for s in st["steps"]][2] == ("head", 57, 30)


def _same_as_the_list_path(project, plan):
    """The train pipeline chunk by chunk (spilled), checked against the list-of-dicts path: the same chat rows, in
    the same order, with the same provenance and counts."""
    chunked = PipelineRunner(plan, log=lambda _m: None, spill=project / "spill").run("train")
    listed = PipelineRunner(plan, log=lambda _m: None).run("train")
    assert type(chunked.rows).__name__ == "RowTable" and chunked.fmt == listed.fmt == "chat"
    assert [r["_meta"] for r in chunked.rows] == [r["_meta"] for r in listed.rows]
    assert [r["messages"] for r in chunked.rows] == [r["messages"] for r in listed.rows]
    assert chunked.stats == listed.stats and chunked.stats["conservation"]
    return chunked


def test_mix_and_concat_run_chunk_by_chunk_like_the_list_path(project, tok, monkeypatch):
    """concat(...) and mix(...) append their rows after the source's: chunked, the source streams past them and
    their rows go through the later steps at the end, with the same rows, order, provenance and counts."""
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 5)
    plan = _plan(project, n=60, split=None)  # writes data/d.jsonl
    d_rows = [json.loads(x) for x in _lines(60) if not x.endswith(": ")]
    extra = [{"instruction": f"Extra {i}?", "output": f"Extra answer {i}."} for i in range(9)] + d_rows[3:6]
    (project / "data" / "extra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in extra))
    replay = [{"messages": [{"role": "user", "content": f"r{i}"}, {"role": "assistant", "content": f"a{i}"}]}
              for i in range(10)]
    (project / "data" / "replay.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replay))
    steps = [step("dedupe", mode="exact"), step("filter", expr=LONG), step("concat", other="extra"),
             step("to_chat", system="Be brief."), step("mix", other="replay", ratio=0.25, seed=1),
             step("dedupe", mode="exact"), step("head", n=70)]
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_rows": 5}),
                                    "extra": source("extra", "data/extra.jsonl"),
                                    "replay": source("replay", "data/replay.jsonl", format="chat")},
                     pipelines={"train": ("d", steps)}, split=None)
    chunked = _same_as_the_list_path(project, plan)
    st = chunked.stats
    # 69 rows reach mix: it adds 69/3 = 23 of replay's 10 (repeating), the last dedupe drops 3 extra + 13 replay
    assert (st["concatenated"], st["mixed"], st["deduped"], st["sampled_out"]) == (12, 23, 1 + 3 + 13, 6)
    assert [r["_meta"]["source"] for r in chunked.rows][57:] == ["extra"] * 9 + ["replay"] * 4


@pytest.mark.parametrize("where", ["middle", "end", "twice"])
def test_sample_picks_the_same_rows_chunk_by_chunk(project, monkeypatch, where):
    """sample(n, seed) needs the count first: the rows before it are spilled and it picks the positions the list
    path picks; the steps after it read the picked rows back."""
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 6)
    _plan(project, n=90, split=None)  # writes data/d.jsonl
    extra = [{"instruction": f"Extra {i}?", "output": f"Extra answer {i}."} for i in range(7)]
    (project / "data" / "extra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in extra))
    steps = {"middle": [step("dedupe", mode="exact"), step("concat", other="extra"), step("sample", n=40, seed=7),
                        step("filter", expr=LONG), step("to_chat"), step("head", n=30)],
             "end": [step("filter", expr=LONG), step("to_chat"), step("sample", n=50, seed=1)],
             "twice": [step("sample", n=60, seed=2), step("to_chat"), step("sample", n=500, seed=3),
                       step("sample", n=25, seed=4)]}[where]
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_rows": 5}),
                                    "extra": source("extra", "data/extra.jsonl")},
                     pipelines={"train": ("d", steps)}, split=None)
    assert _same_as_the_list_path(project, plan).stats["sampled_out"] > 0


def _traced_peak(project, n: int, spill: bool) -> int:
    """Peak bytes Python allocated while the train pipeline ran over n rows (and, spilled, its split)."""
    plan = _plan(project, n=n, split={"validation": 0.1, "seed": 0})
    runner = PipelineRunner(plan, log=lambda _m: None, spill=project / f"spill{n}" if spill else None)
    tracemalloc.start()
    try:
        ds = runner.run("train")
        steps_mod.split_rows(ds.rows, 0.1, 0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rows_held_in_python_do_not_grow_with_the_file(project, monkeypatch):
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 64)
    import pyarrow as pa

    pa.array(["warm up"])  # pyarrow's first use imports modules: not the rows' memory
    small, large = _traced_peak(project, 1000, True), _traced_peak(project, 8000, True)
    as_list = _traced_peak(project, 8000, False)
    # the list of dicts costs ~1.8 KB a row; chunk by chunk, only the 16-byte dedupe hashes (in a set) and
    # the split's numpy columns of 32-byte hashes grow with the rows (~250 bytes a row, measured)
    assert large < 0.25 * as_list, (small, large, as_list)
    assert large - small < 7000 * 400, (small, large)


def test_split_first_holds_out_the_first_rows_of_a_file(project, tok, monkeypatch):
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 4)
    plan = _plan(project, split={"first": 5})
    p = prepare(plan, tok, cache_dir=project / "cache", **QUIET)
    assert [r["messages"][1]["content"] for r in p.validation_rows] == [
        f"What is {i} plus {i % 7}?" + ("" if i % 3 else f"\n\nc{i}") for i in (1, 2, 3, 4, 5)]
    split = p.stats["split"]
    assert (split["method"], split["first"], split["validation"], split["train"]) == ("first", 5, 5, 52)
    assert split["conservation"]


def test_parquet_is_read_batch_by_batch_with_its_row_numbers(project, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ftlang.data import read

    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 4)
    rows = [{"instruction": f"q{i}", "output": "" if i == 13 else f"answer {i}"} for i in range(1, 31)]
    (project / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), project / "data" / "d.parquet", row_group_size=7)
    assert not isinstance(read.read_parquet(project / "data" / "d.parquet").entries, list)  # read lazily
    plan = make_plan(project, data={"d": source("d", "data/d.parquet", kind="parquet",
                                                on_error={"mode": "skip", "max_rows": 1})},
                     pipelines={"train": ("d", [step("to_chat")])}, split=None)
    runner = PipelineRunner(plan, log=lambda _m: None, spill=project / "spill")
    ds = runner.run("train")
    assert [r["_meta"]["line"] for r in ds.rows] == [i for i in range(1, 31) if i != 13]
    assert [(q["line"], q["code"]) for q in runner.sources["d"].quarantined] == [(13, "FT604")]
    assert runner.source_stats("d")["conservation"] and ds.stats["conservation"]


def test_csv_is_read_row_by_row_with_its_lines(project, monkeypatch):
    from ftlang.data import read

    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 3)
    (project / "data").mkdir()
    lines = ["instruction,output"] + [f"q{i},answer {i}" for i in range(2, 9)]
    lines[4] = 'q5,"an answer\nover two lines"'  # line 5 spans lines 5-6: the next row starts on line 7
    lines.insert(7, "qx,")  # an empty output, on line 9: quarantined at its line
    (project / "data" / "d.csv").write_text("\n".join(lines) + "\n")
    assert not isinstance(read.read_file(project / "data" / "d.csv", "csv", ["instruction"]).entries, list)
    plan = make_plan(project, data={"d": source("d", "data/d.csv", kind="csv", on_error={"mode": "skip", "max_rows": 1})},
                     pipelines={"train": ("d", [step("to_chat")])}, split=None)
    runner = PipelineRunner(plan, log=lambda _m: None, spill=project / "spill")
    ds = runner.run("train")
    assert [r["_meta"]["line"] for r in ds.rows] == [2, 3, 4, 5, 7, 8, 10]
    assert [q["line"] for q in runner.sources["d"].quarantined] == [9]
    assert ds.rows[3]["messages"][1]["content"] == "an answer\nover two lines"


def test_a_json_array_names_every_elements_line():
    """Each element's line is counted once, incrementally (a count from the file's start per element made
    reading quadratic): the lines stay exact, element after element, across a duplicate-key element."""
    from ftlang.data.read import read_json

    rows = [{"instruction": f"q{i}", "output": f"a{i}\nwith a newline"} for i in range(300)]
    text = json.dumps(rows, indent=2)
    text = text.replace('"instruction": "q150"', '"instruction": "q150", "instruction": "again"')
    starts = [i for i, c in enumerate(text) if c == "{"]
    res = read_json(text)
    assert res.fatal is None and len(res.entries) == 300
    assert [e.line for e in res.entries] == [text.count("\n", 0, p) + 1 for p in starts]
    assert [(e.line, e.code) for e in res.entries if e.code] == [(text.count("\n", 0, starts[150]) + 1, "FT611")]


def test_a_tsv_file_is_read_tab_separated(project, monkeypatch):
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 2)
    (project / "data").mkdir()
    (project / "data" / "d.tsv").write_text("q\ta\nWhat is one, really?\tOne, of course.\nbroken\nTwo?\tTwo.\n")
    plan = make_plan(project, data={"d": source("d", "data/d.tsv", kind="csv", fields={"instruction": "q", "output": "a"},
                                                on_error={"mode": "skip", "max_rows": 1})},
                     pipelines={"train": ("d", [])}, split=None)
    runner = PipelineRunner(plan, log=lambda _m: None, spill=project / "spill")
    ds = runner.run("train")
    assert [(r["_meta"]["line"], r["instruction"], r["output"]) for r in ds.rows] == [
        (2, "What is one, really?", "One, of course."), (4, "Two?", "Two.")]
    assert [(q["line"], q["code"]) for q in runner.sources["d"].quarantined] == [(3, "FT613")]


def _random_steps(rng) -> list:
    """A random pipeline over instruction rows: per-row, append and sample steps in any order, one conversion."""
    pool = [lambda: step("dedupe", mode=rng.choice(["exact", "normalized"])), lambda: step("filter", expr=LONG),
            lambda: step("head", n=rng.randint(1, 90)), lambda: step("sample", n=rng.randint(1, 90), seed=rng.randint(0, 9)),
            lambda: step("concat", other="extra"), lambda: step("mix", other="replay", ratio=rng.choice([0.1, 0.3]),
                                                                seed=rng.randint(0, 9))]
    before = [rng.choice(pool)() for _ in range(rng.randint(0, 4))]
    after = [rng.choice(pool[:1] + pool[2:])() for _ in range(rng.randint(0, 3))]  # filter reads `output`
    return [*before, step("to_chat", system="S."), *after]


@pytest.mark.parametrize("seed", range(24))
def test_random_pipelines_give_the_list_paths_rows(project, monkeypatch, seed):
    """Any mix of per-row, append and sample steps, at any chunk size: the chunked runner gives the list path's
    rows, order, provenance and counts."""
    import random

    rng = random.Random(seed)
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", rng.choice([1, 3, 7, 64]))
    _plan(project, n=70, split=None)  # writes data/d.jsonl
    extra = [{"instruction": f"Extra {i}?", "output": f"Extra answer {i}."} for i in range(rng.randint(1, 12))]
    (project / "data" / "extra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in extra))
    replay = [{"messages": [{"role": "user", "content": f"r{i}"}, {"role": "assistant", "content": f"a{i}"}]}
              for i in range(5)]
    (project / "data" / "replay.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replay))
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_rows": 5}),
                                    "extra": source("extra", "data/extra.jsonl"),
                                    "replay": source("replay", "data/replay.jsonl", format="chat")},
                     pipelines={"train": ("d", _random_steps(rng))}, split=None)
    _same_as_the_list_path(project, plan)


def test_preview_taps_the_first_rows_chunk_by_chunk(project, monkeypatch):
    """ftlang data preview's first rows at the source and after each step: the chunked runner taps the rows the
    list path holds there."""
    monkeypatch.setattr(steps_mod, "CHUNK_ROWS", 3)
    _plan(project, n=40, split=None)
    extra = [{"instruction": f"Extra {i}?", "output": f"Extra answer {i}."} for i in range(4)]
    (project / "data" / "extra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in extra))
    steps = [step("dedupe", mode="exact"), step("filter", expr=LONG), step("head", n=30), step("concat", other="extra"),
             step("sample", n=25, seed=1), step("to_chat")]
    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", on_error={"mode": "skip", "max_rows": 5}),
                                    "extra": source("extra", "data/extra.jsonl")},
                     pipelines={"train": ("d", steps)}, split=None)
    chunked = PipelineRunner(plan, log=lambda _m: None, spill=project / "spill", taps=5)
    listed = PipelineRunner(plan, log=lambda _m: None, taps=5)
    chunked.run("train")
    listed.run("train")
    assert sorted(chunked.tapped["train"]) == list(range(len(steps) + 1))
    assert chunked.tapped == listed.tapped and all(len(v) == 5 for v in chunked.tapped["train"].values())
