"""`ftlang import`: Axolotl, LLaMA-Factory and torchtune configs (tests/data/import/<tool>/, written from each
tool's documented schema) become recipes that format, check and plan as the config meant; no key of a config
disappears without a `# not imported:` comment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ftlang.cli import main
from ftlang.commands.import_ import import_config
from ftlang.semantic.check import check_text
from ftlang.syntax.format import format_text

DATA = Path(__file__).parent / "data" / "import"
CONFIGS = sorted(p for p in DATA.glob("*/*.y*ml"))
_MISSING = re.compile(r"data path `([^`]+)` does not exist")
_ROW = {"instruction": "q", "output": "a"}


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.stem}"


def _keys(cfg: dict, tool: str) -> list[str]:
    """Every key of a config: top level, and `section.key` inside torchtune's builder sections."""
    out = []
    for k, v in cfg.items():
        if tool == "torchtune" and isinstance(v, dict):
            out += [f"{k}.{inner}" for inner in v]
        else:
            out.append(k)
    return out


def _covered(key: str, handled: set[str]) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:i]) in handled for i in range(1, len(parts) + 1))


def _checked(text: str, tmp_path: Path):
    """Check the recipe in a project of its own; the data files it names are created (one row each) after the
    first check, which must fail only on those paths; then it checks clean and has a plan."""
    (tmp_path / "pyproject.toml").write_text("")
    recipe = tmp_path / "recipe.ft"
    recipe.write_text(text)
    first = check_text(text, recipe)
    errors = [d for d in first.diagnostics if d.severity.name == "ERROR"]
    assert {d.code for d in errors} <= {"FT203"}, [d.message for d in errors]
    for d in errors:  # `check` reads no rows (`check --data` does): a file that exists is enough
        target = tmp_path / _MISSING.search(d.message).group(1)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps([_ROW]) if target.suffix == ".json" else json.dumps(_ROW) + "\n")
    second = check_text(text, recipe)
    assert second.ok, [d.message for d in second.diagnostics]
    return second.plan


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_every_key_is_imported_or_commented_and_the_recipe_checks(config: Path, tmp_path: Path) -> None:
    tool = config.parent.name
    text, draft = import_config(config)
    assert draft.tool.lower().replace("-", "") == tool  # detected from the keys
    cfg = yaml.safe_load(config.read_text())
    lost = [k for k in _keys(cfg, tool) if not _covered(k, draft.handled)]
    assert not lost, f"keys neither imported nor commented: {lost}"
    comments = [line for line in text.splitlines() if line.startswith("# not imported: ")]
    assert comments == [f"# not imported: {n}" for n in draft.notes]
    for key in draft.skipped:
        assert any(c.startswith(f"# not imported: {key}: ") for c in comments), key
    assert format_text(text)[0] == text  # already in the formatter's layout
    assert _checked(text, tmp_path) is not None


# What each config means, read back from the plan of its imported recipe.
EXPECT = {
    "axolotl/llama31_lora": {"method.kind": "lora", "method.r": 32, "method.alpha": 16, "train.packing": True, "eval.packing": True,
                             "train.optimizer": "adamw_8bit", "train.warmup_steps": 10, "datasets.split.validation":
                             0.05, "train.precision": "bf16", "model.card": "llama31_8b", "train.lr": 2e-4,
                             "train.attention": "flash_attention_2", "eval.every": 0.25,
                             "train.pad_token": "<|end_of_text|>"},
    "axolotl/mistral_qlora": {"method.kind": "qlora", "train.optimizer": "paged_adamw_32bit", "eval.every": 50,
                              "train.warmup_ratio": 0.1, "train.seed": 42, "train.max_seq_len": 8192},
    "axolotl/qwen25_full": {"method.kind": "full", "train.template": "chatml", "train.lr": 2e-5,
                            "train.grad_accum": 8},
    "axolotl/llama31_fsdp": {"method.kind": "lora", "hardware.strategy": "fsdp",
                             "model.source.path": "meta-llama/Llama-3.1-8B-Instruct",
                             "method.modules_to_save": ["embed_tokens", "lm_head"],
                             "train.add_tokens": ["<|tool_call|>"], "hardware.zero_stage": 3,
                             "hardware.wrap": "transformer", "hardware.offload_params": False,
                             "hardware.state_dict": "full", "train.reentrant_checkpointing": False,
                             "train.optimizer": "adamw"},
    "axolotl/llama2_deepspeed": {"method.kind": "full", "hardware.strategy": "deepspeed", "train.weight_decay": 0.1,
                                 "hardware.zero_stage": 3, "train.compile": True, "export.push": "org/llama2-corpus"},
    "axolotl/llama32_custom_qlora": {"method.kind": "qlora", "method.targets": ["q_proj", "v_proj"],
                                     "train.max_steps": 500, "train.precision": "fp16"},
    "llamafactory/llama3_lora_sft": {"method.kind": "lora", "method.r": 8, "eval.every": 500, "train.epochs": 3.0,
                                     "train.data_workers": 16, "model.source.trust_remote_code": True,
                                     "eval.batch": 1},
    "llamafactory/qwen25_qlora": {"method.kind": "qlora", "method.targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
                                  "train.template": "chatml", "eval.every": "epoch",
                                  "train.optimizer": "paged_adamw_8bit"},
    "llamafactory/llama31_full_ds3": {"method.kind": "full", "hardware.strategy": "deepspeed", "train.lr": 1e-5,
                                      "hardware.zero_stage": 3, "hardware.offload_optimizer": True,
                                      "hardware.offload_params": None, "train.pure_bf16": True},
    "llamafactory/mistral_lora_ds2": {"method.kind": "lora", "method.dora": True,
                                      "method.modules_to_save": ["embed_tokens", "lm_head"], "hardware.zero_stage": 2, "train.max_steps": 1000,
                                      "train.max_grad_norm": 0.5, "train.packing": True},
    "llamafactory/gemma2_qlora_8bit": {"method.kind": "lora", "method.load_in_8bit": True,
                                       "train.schedule": "constant_with_warmup",
                                       "train.gradient_checkpointing": True,
                                       "train.attention": "flash_attention_2"},
    "llamafactory/llama32_dpo_missing": {"method.kind": "lora", "train.lr": 5e-6},
    "torchtune/llama31_8b_lora_single_device": {
        "method.kind": "lora", "method.targets": ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "train.lr": 3e-4, "train.warmup_steps": 100, "train.schedule": "cosine", "train.grad_accum": 8,
        "train.gradient_checkpointing": True, "hardware.device": "cuda", "train.loss": "chunked"},
    "torchtune/llama31_8b_qlora_single_device": {"method.kind": "qlora", "train.packing": True,
                                                 "train.optimizer": "paged_adamw_8bit", "train.max_seq_len": 2048},
    "torchtune/llama32_1b_full_single_device": {"method.kind": "full", "eval.every": 200, "model.card": "llama32_1b"},
    "torchtune/llama31_8b_lora_distributed": {"method.kind": "lora", "hardware.strategy": "fsdp"},
    "torchtune/llama31_70b_full_distributed": {"method.kind": "full", "hardware.strategy": "fsdp",
                                               "model.card": "llama31_70b", "train.lr": 2e-5,
                                               "train.max_steps": 1000, "hardware.offload_params": True,
                                               "train.compile": False, "train.precision": "bf16"},
    "torchtune/qwen25_7b_lora_text": {"method.kind": "lora", "train.precision": "fp32", "model.card": "qwen25_7b"},
}


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_the_plan_means_what_the_config_said(name: str, tmp_path: Path) -> None:
    text, _ = import_config(DATA / f"{name}.yaml" if (DATA / f"{name}.yaml").exists() else DATA / f"{name}.yml")
    plan = _checked(text, tmp_path)
    got = {k: _get(plan, k) for k in EXPECT[name]}
    assert got == EXPECT[name]


def test_every_tool_has_lora_qlora_full_and_multi_gpu_configs() -> None:
    for tool in ("axolotl", "llamafactory", "torchtune"):
        mine = {k: v for k, v in EXPECT.items() if k.startswith(tool + "/")}
        assert len(list((DATA / tool).glob("*.y*ml"))) >= 6
        assert {"lora", "qlora", "full"} <= {v["method.kind"] for v in mine.values()}
        assert any(v.get("hardware.strategy") in ("fsdp", "deepspeed") for v in mine.values())


def test_cli_writes_the_recipe_and_from_forces_the_tool(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.ft"
    config = DATA / "axolotl" / "mistral_qlora.yml"
    assert main(["import", str(config), "-o", str(out)]) == 0
    assert out.read_text().startswith("# Imported from mistral_qlora.yml (Axolotl)")
    assert "noted as not imported" in capsys.readouterr().err
    # forced to read it as LLaMA-Factory: Axolotl's own keys all become comments, none is dropped
    assert main(["import", str(config), "--from", "llamafactory"]) == 0
    text = capsys.readouterr().out
    assert "(LLaMA-Factory)" in text and "# not imported: base_model: mistralai/Mistral-7B-v0.1" in text


@pytest.mark.parametrize("content, code", [("a: [1, 2\n", "FT950"), ("- just a list\n", "FT950"),
                                           ("foo: 1\nbar: 2\n", "FT951")])
def test_unreadable_or_unknown_configs_are_diagnostics(content: str, code: str, tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.yml"
    config.write_text(content)
    assert main(["import", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"error[{code}]" in err and "help:" in err and "Traceback" not in err


def test_a_missing_pyyaml_names_the_import_extra(monkeypatch) -> None:
    import tomllib

    from ftlang import environment

    extras = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(r.lower().startswith("pyyaml") for r in extras["import"])
    monkeypatch.setattr(environment, "requirements", lambda: {"pyyaml": ("pyyaml>=6", "import")})
    d = environment.missing_dependency(ModuleNotFoundError("No module named 'yaml'", name="yaml"), "import")
    assert d is not None and d.code == "FT901" and d.help == "pip install 'ftlang[import]'"


def _import_text(tmp_path: Path, config: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text(config)
    return import_config(path)[0]


def test_a_reupload_or_variant_of_a_card_model_gets_a_copy_of_the_card(tmp_path: Path) -> None:
    text = _import_text(tmp_path, "base_model: NousResearch/Meta-Llama-3.1-8B-Instruct\nadapter: lora\n"
                                  "datasets:\n  - path: yahma/alpaca-cleaned\n    type: alpaca\n    name: default\n")
    assert 'source = hf("NousResearch/Meta-Llama-3.1-8B-Instruct")' in text
    assert 'hf_dataset("yahma/alpaca-cleaned", split = "train", config = "default")' in text
    plan = _checked(text, tmp_path)
    assert plan.model.source.path == "NousResearch/Meta-Llama-3.1-8B-Instruct"
    assert (plan.model.hidden, plan.model.layers, plan.model.kv_heads) == (4096, 32, 8)  # Llama 3.1 8B's


def test_a_model_without_a_card_is_a_hub_id_and_a_to_do(tmp_path: Path) -> None:
    text = _import_text(tmp_path, "base_model: example-org/brand-new-7b\nadapter: lora\nmicro_batch_size: 2\n"
                                  "datasets:\n  - path: data/x.jsonl\n    type: alpaca\n")
    assert 'model = hf("example-org/brand-new-7b")' in text
    assert "# to do: no stdlib card describes example-org/brand-new-7b" in text
    (tmp_path / "pyproject.toml").write_text("")
    result = check_text(text, tmp_path / "recipe.ft")
    assert {d.code for d in result.diagnostics if d.severity.name == "ERROR"} == {"FT203", "FT212"}


def test_a_step_limit_overrides_the_epochs_as_in_transformers(tmp_path: Path) -> None:
    text = _import_text(tmp_path, "base_model: Qwen/Qwen2.5-0.5B\nnum_epochs: 3\nmax_steps: 200\n"
                                  "datasets:\n  - path: data/x.jsonl\n    type: alpaca\n")
    assert "# not imported: epochs: 3 — the step limit (`max_steps = 200`) decides the length" in text
    assert _checked(text, tmp_path).train.max_steps == 200


_ODD = [None, {"a": 1}, 'x "y"', 1.5, ["a b", 2], "true"]


@pytest.mark.parametrize("config", [DATA / "axolotl" / "llama31_fsdp.yml", DATA / "llamafactory" / "llama3_lora_sft.yaml",
                                    DATA / "torchtune" / "llama32_1b_full_single_device.yaml"], ids=_id)
def test_odd_values_anywhere_give_a_recipe_that_parses_never_a_crash(config: Path) -> None:
    from ftlang.importers import convert
    from ftlang.importers.write import render

    tool = config.parent.name
    original = yaml.safe_load(config.read_text())
    paths = [(k,) for k in original] + [(k, i) for k, v in original.items() if isinstance(v, dict) for i in v] + [
        (k, 0, i) for k, v in original.items() if isinstance(v, list) and v and isinstance(v[0], dict) for i in v[0]]
    for path in paths:
        for odd in _ODD:
            cfg = yaml.safe_load(config.read_text())
            inner = cfg
            for part in path[:-1]:
                inner = inner[part]
            inner[path[-1]] = odd
            draft = convert(cfg, tool, config.name, "r", config.parent)
            render(draft)  # runs the formatter: raises if the text does not parse
            assert all(_covered(k, draft.handled) for k in _keys(cfg, tool)), (path, odd)


@pytest.mark.parametrize("config, source, card", [
    ("base_model: NousResearch/Meta-Llama-3-8B\nadapter: lora\nmicro_batch_size: 1\n", "NousResearch/Meta-Llama-3-8B",
     "llama3_8b"),
    ("model:\n  _component_: torchtune.models.llama3.lora_llama3_8b\n  lora_attn_modules: [q_proj, v_proj]\n"
     "tokenizer:\n  _component_: torchtune.models.llama3.llama3_tokenizer\n", "meta-llama/Meta-Llama-3-8B",
     "llama3_8b"),
])
def test_the_issue_example_models_resolve_to_stdlib_cards(config: str, source: str, card: str,
                                                          tmp_path: Path) -> None:
    text = _import_text(tmp_path, config + "datasets:\n  - path: data/x.jsonl\n" if "base_model" in config
                        else config + "dataset:\n  _component_: torchtune.datasets.alpaca_dataset\n")
    (tmp_path / "pyproject.toml").write_text("")
    result = check_text(text, tmp_path / "recipe.ft")
    assert not {d.code for d in result.diagnostics if d.severity.name == "ERROR"} - {"FT203"}
    plan = _checked(text, tmp_path)
    assert plan.model.source.path == source and card in text


def test_dataset_lists_are_concatenated_in_order(tmp_path: Path) -> None:
    text, _ = import_config(DATA / "axolotl" / "llama32_custom_qlora.yml")
    assert "dataset train = faq | concat(alpaca)" in text
    text, _ = import_config(DATA / "llamafactory" / "llama31_full_ds3.yaml")
    assert "dataset train = support_alpaca | concat(alpaca_hub)" in text
    plan = _checked(text, tmp_path)
    assert [s.op for s in plan.datasets.pipelines["train"].steps] == ["concat"]


def test_max_samples_keeps_the_first_rows_of_each_dataset(tmp_path: Path) -> None:
    text = _import_text(tmp_path, "model_name_or_path: Qwen/Qwen2.5-0.5B\nstage: sft\nfinetuning_type: full\n"
                                  "dataset: a,b\nmax_samples: 100\n")
    assert "dataset b_first = b | head(100)" in text
    assert "dataset train = a | head(100) | concat(b_first)" in text
    plan = _checked(text, tmp_path)
    assert [s.op for s in plan.datasets.pipelines["train"].steps] == ["head", "concat"]
