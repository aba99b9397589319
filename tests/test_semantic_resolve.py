"""Resolution: imports, project root, params and --set, extends merging."""

from __future__ import annotations

from pathlib import Path

from semantic_project import BASE, make_project

from ftlang.semantic.check import check_file, check_text
from ftlang.semantic.resolve import merge_body, parse_set_value, project_root
from ftlang.source import SourceFile
from ftlang.syntax import ast
from ftlang.syntax.parser import parse


def _body(text: str) -> tuple:
    module, diags = parse(SourceFile("x.ft", text))
    assert not diags
    return module.items[0].body


def test_project_root(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert project_root(tmp_path / "a" / "b" / "r.ft") == tmp_path.resolve()


def test_set_values_are_typed() -> None:
    span = SourceFile("x", "").span(0, 0)
    assert isinstance(parse_set_value("3", span), ast.Int)
    assert parse_set_value("2e-4", span).value == 2e-4
    assert parse_set_value("5%", span).value == 0.05
    assert parse_set_value("24GB", span).value == 24 * 10**9
    assert parse_set_value("512MiB", span).value == 512 * 2**20
    assert parse_set_value("true", span).value is True
    assert parse_set_value('"x y"', span).value == "x y"
    assert parse_set_value("cosine", span).value == "cosine"


def test_merge_overrides_per_key() -> None:
    parent = _body("recipe a { train { lr = 1e-4, epochs = 2 } method lora { r = 8, alpha = 16 } }")
    child = _body("recipe b { train { lr = 3e-4 } method lora { r = 16 } }")
    merged = merge_body(parent, child)
    train = next(s for s in merged if isinstance(s, ast.Block) and s.kind == "train")
    assert {s.key: s.value.value for s in train.body} == {"lr": 3e-4, "epochs": 2}
    method = next(s for s in merged if isinstance(s, ast.Block) and s.kind == "method")
    assert {s.key: s.value.value for s in method.body} == {"r": 16, "alpha": 16}


def test_merge_other_method_kind_replaces_and_gates_replace() -> None:
    parent = _body("recipe a { method lora { r = 8 } eval { gate loss < 2 \n gate perplexity < 9 } }")
    child = _body("recipe b { method prefix { virtual_tokens = 4 } eval { gate loss < 1 } }")
    merged = merge_body(parent, child)
    method = next(s for s in merged if isinstance(s, ast.Block) and s.kind == "method")
    assert method.label.name == "prefix" and [s.key for s in method.body] == ["virtual_tokens"]
    ev = next(s for s in merged if isinstance(s, ast.Block) and s.kind == "eval")
    assert len([s for s in ev.body if isinstance(s, ast.Gate)]) == 1


def test_extends_across_files_and_unknown_parent(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    (proj / "lib").mkdir()
    (proj / "lib" / "base.ft").write_text(BASE.replace('"models/', '"../models/').replace('"data/', '"../data/'))
    text = 'import "lib/base.ft"\nrecipe child extends base_lora {\n  train { lr = 1e-4 }\n}\n'
    res = check_text(text, proj / "child.ft", recipe="child")
    assert res.plan is not None, [d.message for d in res.diagnostics]
    assert res.plan.train.lr == 1e-4 and res.plan.train.batch == 2
    assert res.plan.data["d"].path == "data/chat.jsonl"
    assert res.recipes == ["child"]  # only the main file's recipes are checked
    res = check_text(text.replace("base_lora", "base_lorra"), proj / "child.ft")
    (d,) = [d for d in res.diagnostics if d.code == "FT211"]
    assert "did you mean `base_lora`" in d.help


def test_extends_cycle(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    text = BASE + "recipe x extends y { }\nrecipe y extends x { }\n"
    res = check_text(text, proj / "r.ft")
    assert any(d.code == "FT211" and "cycle" in d.message for d in res.diagnostics)


def test_param_used_and_set(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    text = "param bs = 2\nparam sched = \"cosine\"\n" + BASE.replace("batch = 2", "batch = bs, schedule = sched")
    (proj / "p.ft").write_text(text)
    plan = check_file(proj / "p.ft", recipe="base_lora").plan
    assert plan.train.batch == 2 and plan.train.schedule == "cosine"
    plan = check_file(proj / "p.ft", sets={"bs": "8"}).plan
    assert plan.train.batch == 8 and plan.recipe.params["bs"] == 8
    res = check_file(proj / "p.ft", sets={"bs": "8%"})
    assert [d.code for d in res.diagnostics if d.severity.value == "error"] == ["FT102"]


def test_unknown_recipe_selected(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    res = check_text(BASE, proj / "r.ft", recipe="nope")
    assert [d.code for d in res.diagnostics] == ["FT201"] and res.plan is None


def test_cards_file_checks_its_cards(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    res = check_text("model_card c {\n  source = hf(\"a/b\")\n  family = lama\n}\n", proj / "c.ft")
    assert {d.code for d in res.diagnostics} >= {"FT104", "FT105"}


def test_schema_tables_are_introspectable() -> None:
    from ftlang.semantic.schema import BLOCKS, all_keys, block, markdown

    names = {b.name for b in BLOCKS}
    assert {"recipe", "data", "split", "train", "early_stop", "hardware", "eval", "generation", "export",
            "register", "model_card", "quant"} <= names
    assert {f"method.{k}" for k in ("full", "lora", "qlora", "prefix", "prompt", "adapter", "ia3")} <= names
    assert block("train").key("warmup").type == "steps_or_ratio"
    assert all(k.doc for _, k in all_keys())
    md = markdown()
    assert "| `epochs` | number |" in md and "### `method.qlora`" in md


def test_alias_defined_twice(tmp_path: Path) -> None:
    text = ("model_card c {\n  source = hf(\"a/b\")\n  family = llama\n  hidden = 8\n  layers = 1\n  heads = 2\n"
            "  intermediate = 8\n  vocab = 10\n  modules = [q_proj]\n  alias a = [q_proj]\n  alias a = [q_proj]\n}\n")
    res = check_text(text, tmp_path / "c.ft")
    assert [(d.code, d.span.line) for d in res.diagnostics] == [("FT202", 11)]


def test_string_params_as_call_arguments(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    text = 'param train_file = "data/chat.jsonl"\nparam base = "models/tiny-llama"\n' + BASE.replace(
        'local("models/tiny-llama")', "local(base)").replace('chat_jsonl("data/chat.jsonl")', "chat_jsonl(train_file)")
    res = check_text(text, proj / "r.ft")
    assert res.plan is not None and res.plan.data["d"].path == "data/chat.jsonl"
    res = check_text(text, proj / "r.ft", sets={"train_file": "data/nope.jsonl"})
    (d,) = res.diagnostics
    assert d.code == "FT203" and d.span.line == 5  # at the use
