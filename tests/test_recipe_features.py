"""Settings published recipes need (issue 11): each key checked, planned, mapped onto its library object
and, where the CPU allows, trained on a tiny model. Absent keys leave plans (and their hashes) unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from semantic_project import BASE, make_project, variant

from ftlang.diagnostics import Severity
from ftlang.semantic.check import check_text


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("features"))


def _errors(proj: Path, text: str) -> list:
    return [d for d in check_text(text, proj / "r.ft").diagnostics if d.severity is Severity.ERROR]


def _plan(proj: Path, text: str):
    result = check_text(text, proj / "r.ft")
    assert not [d for d in result.diagnostics if d.severity is Severity.ERROR], result.diagnostics
    return result.plan


def _train(extra: str) -> str:
    return variant("train {", f"train {{ lr = 2e-4, epochs = 1, batch = 2, {extra} }}")


def _eval(extra: str) -> str:
    return variant("eval {", f"eval {{ metrics = [perplexity], gate perplexity < 100, {extra} }}")


# ---------------------------------------------------------------------------- defaults keep plans


def test_absent_keys_leave_the_plan_json_unchanged(proj: Path) -> None:
    plan = json.loads(_plan(proj, BASE).to_json())
    assert "attention" not in plan["train"] and "batch" not in plan["eval"]
    assert plan["resources"]["attention"] == "sdpa"  # transformers' default for llama


# ---------------------------------------------------------------------------- attention


def test_attention_is_planned_and_estimated(proj: Path) -> None:
    eager = _plan(proj, _train("attention = eager"))
    assert eager.train.attention == "eager" and eager.resources.attention == "eager"
    sdpa = _plan(proj, _train("attention = sdpa"))
    # eager keeps the fp32 softmax scores per head: more activation memory than SDPA
    assert eager.resources.memory.activations_bytes > sdpa.resources.memory.activations_bytes
    assert eager.sha256 != sdpa.sha256 != _plan(proj, BASE).sha256


def test_attention_typo_gets_did_you_mean(proj: Path) -> None:
    (err,) = _errors(proj, _train("attention = flash_attn"))
    assert err.code == "FT104" and "flash_attention_2" in err.help


@pytest.mark.parametrize("extra, hardware, why", [
    ("precision = fp16, attention = flash_attention_2", 'hardware { gpu = "T4-16GB" }', "T4-16GB (turing)"),
    ("attention = flash_attention_2", "hardware { device = cpu }", "CPU"),
    ("attention = flash_attention_2", 'hardware { gpu = "A100-80GB" }', "fp32"),
])
def test_flash_attention_rule(proj: Path, extra: str, hardware: str, why: str) -> None:
    text = _train(extra).replace("recipe base_lora {", "recipe base_lora {\n  " + hardware)
    (err,) = _errors(proj, text)
    assert err.code == "FT309" and why in err.message and err.help
    assert err.span.line == text.splitlines().index(next(x for x in text.splitlines() if "attention" in x)) + 1


def test_flash_attention_on_ampere_in_bf16_checks(proj: Path) -> None:
    text = _train("precision = bf16, attention = flash_attention_2").replace(
        "recipe base_lora {", 'recipe base_lora {\n  hardware { gpu = "A100-80GB" }')
    plan = _plan(proj, text)
    assert plan.train.attention == "flash_attention_2" and plan.resources.attention == "flash"


# ---------------------------------------------------------------------------- eval every fraction, eval batch


@pytest.mark.parametrize("written, value", [("25%", 0.25), ("0.5", 0.5), ("3", 3), ("end", "end")])
def test_eval_every_fraction_of_an_epoch(proj: Path, written: str, value) -> None:
    assert _plan(proj, _eval(f"every = {written}")).eval.every == value


@pytest.mark.parametrize("written", ["1.5", "0", "0%", "-1"])
def test_eval_every_out_of_range_is_a_type_error(proj: Path, written: str) -> None:
    errs = _errors(proj, _eval(f"every = {written}"))
    assert errs and errs[0].code in ("FT102", "FT103") and "fraction of an epoch" in errs[0].message + errs[0].help


def test_eval_batch(proj: Path) -> None:
    assert _plan(proj, _eval("batch = 16")).eval.batch == 16
    (err,) = _errors(proj, _eval("batch = 0"))
    assert err.code == "FT103"


# ---------------------------------------------------------------------------- special tokens, modules_to_save


def _lora(extra: str) -> str:
    return variant("method lora", f"method lora {{ r = 8, alpha = 16, targets = [q_proj, v_proj], {extra} }}")


def test_tokens_and_modules_to_save_are_planned(proj: Path) -> None:
    text = _lora("modules_to_save = [embed_tokens, lm_head]").replace(
        "batch = 2 }", 'batch = 2, add_tokens = ["<|im_start|>", "<|im_end|>"], pad_token = "<|pad|>" }')
    plan = _plan(proj, text)
    assert plan.train.add_tokens == ["<|im_start|>", "<|im_end|>"] and plan.train.pad_token == "<|pad|>"
    assert plan.method.modules_to_save == ["embed_tokens", "lm_head"]
    base = _plan(proj, BASE)
    # the tiny llama: vocab 400, hidden 64, untied: two full 400×64 matrices train beside the adapter
    assert plan.resources.trainable_params - base.resources.trainable_params == 2 * 400 * 64
    assert "modules_to_save" not in json.loads(base.to_json())["method"]


def test_modules_to_save_typo_and_frozen_new_tokens(proj: Path) -> None:
    (err,) = _errors(proj, _lora("modules_to_save = [embed_token]"))
    assert err.code == "FT310" and "embed_tokens" in err.message
    warn = [d for d in check_text(_train('add_tokens = ["<x>"]'), proj / "r.ft").diagnostics if d.code == "FT411"]
    assert warn and "modules_to_save" in warn[0].help


# ---------------------------------------------------------------------------- precision, kernels, 8-bit base


def test_pure_bf16_compile_reentrant_8bit_and_storage_are_planned(proj: Path) -> None:
    plan = _plan(proj, _train("precision = bf16, pure_bf16 = true, compile = true, gradient_checkpointing = true, "
                              "reentrant_checkpointing = true"))
    assert (plan.train.pure_bf16, plan.train.compile, plan.train.reentrant_checkpointing) == (True, True, True)
    mixed = _plan(proj, _train("precision = bf16, gradient_checkpointing = true"))
    assert plan.resources.memory.peak_bytes < mixed.resources.memory.peak_bytes  # no fp32 master, bf16 state
    int8 = _plan(proj, _lora("load_in_8bit = true"))
    fp32 = _plan(proj, BASE)
    assert int8.method.load_in_8bit and int8.resources.memory.weights_bytes < fp32.resources.memory.weights_bytes
    q = _plan(proj, variant("method lora", "method qlora { r = 8, alpha = 16, targets = [q_proj], "
                                           "quant { compute_dtype = bf16, storage = bf16 } }"))
    assert q.method.quant.storage == "bf16"


def test_pure_bf16_needs_bf16_precision(proj: Path) -> None:
    (err,) = _errors(proj, _train("pure_bf16 = true"))
    assert err.code == "FT311" and "precision = bf16" in err.help


# ---------------------------------------------------------------------------- fsdp / deepspeed


def _hw(hardware: str, method: str | None = None, text: str = BASE) -> str:
    text = text.replace("recipe base_lora {", "recipe base_lora {\n  " + hardware)
    return variant("method lora", method, text) if method else text


_QLORA = "method qlora { r = 8, alpha = 16, targets = [q_proj], quant { compute_dtype = bf16%s } }"


@pytest.mark.parametrize("hardware, stage, offload", [
    ('hardware { gpu = "A100-80GB", count = 4, strategy = deepspeed }', 2, (False, False)),
    ('hardware { gpu = "A100-80GB", count = 4, strategy = deepspeed, zero_stage = 1 }', 1, (False, False)),
    ('hardware { gpu = "A100-80GB", count = 4, strategy = deepspeed, zero_stage = 3, offload_params = true, '
     'offload_optimizer = true }', 3, (True, True)),
    ('hardware { gpu = "A100-80GB", count = 4, strategy = fsdp }', 3, (False, False)),
    ('hardware { gpu = "A100-80GB", count = 4, strategy = fsdp, zero_stage = 2, wrap = size, state_dict = sharded }',
     2, (False, False)),
    ('hardware { gpu = "A100-80GB", count = 4, strategy = fsdp, offload_params = true }', 3, (True, True)),
    ('hardware { gpu = "A100-80GB", count = 4, strategy = ddp }', 0, (False, False)),
])
def test_launcher_plan_and_estimator_agree_on_the_strategy(proj: Path, hardware: str, stage: int, offload) -> None:
    """The stage and offloads the accelerate config launches are the ones the estimate assumed."""
    from ftlang.backend.launch import accelerate_config
    from ftlang.plan import zero_stage
    from ftlang.semantic.cards import card_from_plan
    from ftlang.semantic.resources import runtime_of

    plan = _plan(proj, _hw(hardware))
    cfg = accelerate_config(plan)
    assert zero_stage(plan.hardware) == stage
    launched = {"stage": 0, "offload": (False, False)}
    if "deepspeed_config" in cfg:
        ds = cfg["deepspeed_config"]
        launched = {"stage": ds["zero_stage"], "offload": (ds["offload_param_device"] == "cpu",
                                                          ds["offload_optimizer_device"] == "cpu")}
        assert ds.get("zero3_save_16bit_model", False) == (stage == 3)
    elif "fsdp_config" in cfg:
        f = cfg["fsdp_config"]
        launched = {"stage": 3 if f["fsdp_sharding_strategy"] == "FULL_SHARD" else 2,
                    "offload": (f["fsdp_offload_params"], f["fsdp_offload_params"])}
        assert f["fsdp_auto_wrap_policy"] == ("SIZE_BASED_WRAP" if "wrap = size" in hardware else
                                              "TRANSFORMER_BASED_WRAP")
        assert f["fsdp_state_dict_type"] == ("SHARDED_STATE_DICT" if "sharded" in hardware else "FULL_STATE_DICT")
    rt = runtime_of(card_from_plan(plan.model), plan.method, plan.train, plan.hardware)
    assert launched == {"stage": rt.zero_stage, "offload": (rt.offload_params, rt.offload_optimizer)}


def test_sharding_lowers_the_estimate(proj: Path) -> None:
    base = 'hardware { gpu = "H200-141GB", count = 8, strategy = deepspeed%s }'
    full = variant("method lora", "method full { }", 'import "stdlib/models/llama31.ft"\n' + BASE.replace(
        'local("models/tiny-llama")', "llama31_8b")).replace("2e-4", "2e-5")
    peaks = [_plan(proj, _hw(base % extra, text=full)).resources.memory.peak_bytes
             for extra in (", zero_stage = 1", "", ", zero_stage = 3", ", zero_stage = 3, offload_params = true")]
    assert peaks == sorted(peaks, reverse=True) and len(set(peaks)) == 4


def test_fsdp_qlora_follows_peft_guide(proj: Path) -> None:
    pytest.importorskip("torch")
    import torch

    from ftlang.backend.launch import accelerate_config
    from ftlang.backend.methods import quantization_config

    plan = _plan(proj, _hw('hardware { gpu = "A100-80GB", count = 2, strategy = fsdp }', _QLORA % ""))
    assert accelerate_config(plan)["fsdp_config"]["fsdp_use_orig_params"] is False
    assert quantization_config(plan).bnb_4bit_quant_storage == torch.bfloat16  # the compute dtype under fsdp
    (err,) = _errors(proj, _hw('hardware { gpu = "A100-80GB", count = 2, strategy = fsdp }',
                               _QLORA % ", storage = uint8"))
    assert err.code == "FT313" and "storage = bf16" in err.help


@pytest.mark.parametrize("hardware, word", [
    ("hardware { count = 2, strategy = ddp, zero_stage = 3 }", "zero_stage"),
    ("hardware { count = 2, strategy = deepspeed, wrap = size }", "wrap"),
    ("hardware { count = 2, strategy = fsdp, zero_stage = 1 }", "stage 1"),
    ("hardware { count = 2, strategy = deepspeed, offload_params = true }", "ZeRO-3"),
])
def test_sharding_options_of_another_strategy(proj: Path, hardware: str, word: str) -> None:
    (err,) = _errors(proj, _hw(hardware))
    assert err.code == "FT314" and word in err.message


# ---------------------------------------------------------------------------- the runner (tiny model, CPU)


def _tiny(tiny_llama_dir, **kw):
    from backend_helpers import tiny_plan

    from ftlang.plan import LoraMethod

    return tiny_plan(tiny_llama_dir, LoraMethod(r=4, alpha=8, targets=["q_proj", "v_proj"]), **kw)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_attention_reaches_from_pretrained(tiny_llama_dir, attention: str) -> None:
    from ftlang.backend.methods import load_for_training

    model = load_for_training(_tiny(tiny_llama_dir, train={"attention": attention}))
    assert model.config._attn_implementation == attention


def test_flash_attention_without_its_package_or_gpu_is_a_diagnostic(tiny_llama_dir) -> None:
    from ftlang.backend.methods import load_for_training
    from ftlang.diagnostics import DiagnosticError

    with pytest.raises(DiagnosticError) as e:
        load_for_training(_tiny(tiny_llama_dir, train={"attention": "flash_attention_2", "precision": "bf16"}))
    assert e.value.diagnostics[0].code == "FT715" and "sdpa" in e.value.diagnostics[0].help


def test_eval_four_times_per_epoch_with_its_own_batch(tiny_llama_dir, tmp_path) -> None:
    """16 rows, batch 2: 8 steps per epoch, so `every = 0.25` evaluates at steps 2, 4, 6, 8 (eager attention)."""
    from backend_helpers import lm_data

    from ftlang.backend.context import RunContext
    from ftlang.backend.load import load_tokenizer
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.train import seed_everything, train, training_arguments

    plan = _tiny(tiny_llama_dir, train={"max_steps": None, "epochs": 1.0, "batch": 2, "attention": "eager"},
                 eval={"every": 0.25, "batch": 3})
    args = training_arguments(plan, tmp_path, device="cpu", has_validation=True, train_rows=16)
    assert (args.eval_strategy.value, args.eval_steps, args.per_device_eval_batch_size) == ("steps", 2, 3)
    tok = load_tokenizer(plan)
    seed_everything(plan)
    model = load_for_training(plan)
    result = train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=lm_data(tok, n_train=16),
                              log=lambda s: None), tty=False)
    assert [r["step"] for r in result.history if "val_loss" in r] == [2, 4, 6, 8]
    # without the row count the Trainer gets the same fraction as a ratio of all steps
    ratio = training_arguments(plan.model_copy(update={"train": plan.train.model_copy(update={"epochs": 2.0})}),
                               tmp_path, device="cpu", has_validation=True)
    assert ratio.eval_steps == pytest.approx(0.125)


def test_added_tokens_train_their_embeddings(tiny_llama_dir, tmp_path) -> None:
    """add_tokens + pad_token grow the tokenizer and the embeddings; modules_to_save trains the embedding
    rows (of the new tokens too) and the head beside LoRA, and the saved adapter reloads onto a fresh base."""
    from backend_helpers import lm_data, tiny_plan
    from peft import PeftModel

    from ftlang.backend.context import RunContext
    from ftlang.backend.load import load_model, load_tokenizer
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.train import seed_everything, train
    from ftlang.plan import LoraMethod

    method = LoraMethod(r=4, alpha=8, targets=["q_proj", "v_proj"], modules_to_save=["embed_tokens", "lm_head"])
    plan = tiny_plan(tiny_llama_dir, method, train={"max_steps": 3, "add_tokens": ["<|a|>", "<|b|>"],
                                                   "pad_token": "<|pad|>"})
    tok = load_tokenizer(plan)
    assert tok.convert_tokens_to_ids("<|a|>") >= 400 and tok.pad_token == "<|pad|>"
    assert tok.tokenize("x <|a|> y").count("<|a|>") == 1  # a special token: never split
    seed_everything(plan)
    model = load_for_training(plan)
    emb = model.get_input_embeddings()
    assert emb.weight.shape[0] == len(tok) == 403 and model.config.pad_token_id == tok.pad_token_id
    before = emb.weight.detach().clone()
    data = lm_data(tok, n_train=8)
    new_id = tok.convert_tokens_to_ids("<|a|>")
    for row in data.train:  # the new token occurs in the training rows
        row["input_ids"] = [new_id, *row["input_ids"][1:]]
    train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=data, log=lambda s: None),
          tty=False)
    after = model.get_input_embeddings().weight.detach()
    assert not torch_equal(before[new_id], after[new_id])
    model.save_pretrained(tmp_path / "adapter")
    again = PeftModel.from_pretrained(load_model(plan), str(tmp_path / "adapter"))
    assert torch_equal(again.get_input_embeddings().weight[new_id], after[new_id])


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a.float().cpu(), b.float().cpu()))


def test_training_arguments_map_compile_reentrant_and_storage(tiny_llama_dir, tmp_path) -> None:
    import torch

    from ftlang.backend.methods import quantization_config
    from ftlang.backend.train import training_arguments
    from ftlang.plan import QloraMethod, QuantSpec

    plan = _tiny(tiny_llama_dir, train={"compile": True, "gradient_checkpointing": True,
                                        "reentrant_checkpointing": True})
    args = training_arguments(plan, tmp_path, device="cpu", has_validation=False)
    assert args.torch_compile and args.activation_checkpointing_kwargs == {"use_reentrant": True}
    default = training_arguments(_tiny(tiny_llama_dir, train={"gradient_checkpointing": True}), tmp_path,
                                 device="cpu", has_validation=False)
    assert not default.torch_compile and default.activation_checkpointing_kwargs == {"use_reentrant": False}
    from backend_helpers import tiny_plan

    q = tiny_plan(tiny_llama_dir, QloraMethod(r=4, alpha=8, targets=["q_proj"], quant=QuantSpec(storage="bf16")))
    assert quantization_config(q).bnb_4bit_quant_storage == torch.bfloat16
    assert quantization_config(tiny_plan(tiny_llama_dir, QloraMethod(r=4, alpha=8, targets=["q_proj"]))
                               ).bnb_4bit_quant_storage == torch.uint8


@pytest.mark.parametrize("setting", ["pure_bf16", "load_in_8bit"])
def test_pure_bf16_and_8bit_base_train_on_the_cpu(tiny_llama_dir, tmp_path, setting: str) -> None:
    """pure_bf16: every weight, the adapter's too, trains in bf16; load_in_8bit: LoRA over LLM.int8 linears."""
    import torch
    from backend_helpers import lm_data, tiny_plan

    from ftlang.backend.context import RunContext
    from ftlang.backend.load import load_tokenizer
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.train import seed_everything, train
    from ftlang.plan import LoraMethod

    lora = {"r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]}
    if setting == "pure_bf16":
        plan = tiny_plan(tiny_llama_dir, LoraMethod(**lora), train={"max_steps": 3, "precision": "bf16",
                                                                     "pure_bf16": True})
    else:
        plan = tiny_plan(tiny_llama_dir, LoraMethod(**lora, load_in_8bit=True), train={"max_steps": 3},
                         hardware={"device": "cpu"})
    tok = load_tokenizer(plan)
    seed_everything(plan)
    model = load_for_training(plan)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    if setting == "pure_bf16":
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    else:
        assert type(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear8bitLt"
    result = train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=lm_data(tok),
                              log=lambda s: None), tty=False)
    assert result.global_step == 3
    assert any(not torch.equal(before[n], p.detach()) for n, p in trainable.items())


def test_pure_bf16_qlora_keeps_every_unquantized_tensor_in_bf16(tiny_llama_dir) -> None:
    """prepare_model_for_kbit_training upcasts norms, embeddings and head to fp32; pure_bf16 puts them (and
    the 4-bit layers' adapters) back in bf16, as the estimator counts them."""
    import torch
    from backend_helpers import tiny_plan

    from ftlang.backend.methods import load_for_training
    from ftlang.plan import QloraMethod

    plan = tiny_plan(tiny_llama_dir, QloraMethod(r=4, alpha=8, targets=["q_proj", "v_proj"]),
                     train={"max_steps": 1, "precision": "bf16", "pure_bf16": True}, hardware={"device": "cpu"})
    model = load_for_training(plan)
    kinds = {(type(p).__name__ == "Params4bit", p.dtype) for p in model.parameters()}
    assert {d for four, d in kinds if not four} == {torch.bfloat16}
    assert any(four for four, _ in kinds)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.bfloat16}


# ---------------------------------------------------------------------------- ftlang plan --libs


_LIBS_RECIPES = {
    "lora": _lora("modules_to_save = [embed_tokens, lm_head], dropout = 0.1").replace(
        "batch = 2 }", "batch = 2, attention = eager, gradient_checkpointing = true, warmup = 10 }").replace(
        "eval {", "eval { every = 0.25, batch = 3,"),
    "qlora": variant("method lora", _QLORA % ", storage = bf16").replace(
        "batch = 2 }", "batch = 2, precision = bf16, compile = true }"),
}


def _plain(value):
    """A library object's attribute as JSON would print it (enums, sets, dtypes)."""
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):
        return value.value
    if isinstance(value, str) and hasattr(value, "value"):  # str enums
        return value.value
    if isinstance(value, set):
        return sorted(value)
    if type(value).__name__ == "dtype":
        return str(value).removeprefix("torch.")
    return value


#: what TrainingArguments itself normalizes a keyword argument to
_NORMALIZED = {("report_to", "none"): []}


@pytest.mark.parametrize("name", sorted(_LIBS_RECIPES))
def test_plan_libs_prints_what_run_builds(proj: Path, name: str, capsys) -> None:
    """`ftlang plan --libs` output, attribute by attribute, equals the objects ftlang run's code builds."""
    pytest.importorskip("peft")
    from ftlang.backend.methods import peft_config, quantization_config
    from ftlang.backend.train import training_arguments
    from ftlang.cli import main

    text = _LIBS_RECIPES[name].replace("recipe base_lora {", "recipe base_lora {\n  hardware { device = cpu }")
    (proj / f"libs_{name}.ft").write_text(text, encoding="utf-8")
    assert main(["plan", "--libs", str(proj / f"libs_{name}.ft")]) == 0
    printed = json.loads(capsys.readouterr().out)
    plan = _plan(proj, text)
    args = training_arguments(plan, "RUN_DIR/checkpoints", device="cpu", has_validation=True)
    built = {"TrainingArguments": args, "peft": peft_config(plan), "BitsAndBytesConfig": quantization_config(plan)}
    for lib, obj in built.items():
        kwargs = printed[lib]["kwargs"] if lib == "peft" else printed[lib]
        if obj is None:
            assert kwargs is None
            continue
        if lib == "peft":
            assert type(obj).__name__ == printed["peft"]["class"]
        differ = []
        for key, value in kwargs.items():
            have, want = _plain(getattr(obj, key)), _NORMALIZED.get((key, str(value)), value)
            if not (have == want or (isinstance(want, list) and sorted(want) == have)):
                differ.append((lib, key, have, value))
        assert not differ
    if name == "lora":
        assert printed["TrainingArguments"]["eval_steps"] == pytest.approx(0.25)  # of 1 epoch: a ratio
        assert printed["from_pretrained"] == {"attn_implementation": "eager"}
        assert printed["peft"]["kwargs"]["modules_to_save"] == ["embed_tokens", "lm_head"]
    else:
        assert printed["BitsAndBytesConfig"]["bnb_4bit_quant_storage"] == "bfloat16"


def test_plan_libs_stays_torch_free(proj: Path) -> None:
    import subprocess
    import sys

    f = proj / "libs_free.ft"
    f.write_text(_LIBS_RECIPES["qlora"].replace("recipe base_lora {", 'recipe base_lora {\n  hardware { gpu = '
                                                '"A100-80GB", count = 2, strategy = fsdp }'), encoding="utf-8")
    code = ("import sys, json, io, contextlib\nfrom ftlang.cli import main\nbuf = io.StringIO()\n"
            f"with contextlib.redirect_stdout(buf): rc = main(['plan', '--libs', {str(f)!r}])\n"
            "out = json.loads(buf.getvalue())\n"
            "assert rc == 0 and out['accelerate']['fsdp_config']['fsdp_use_orig_params'] is False\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]


# ---------------------------------------------------------------------------- ftlang card


def _offline_hub(monkeypatch, home: Path) -> None:
    """huggingface_hub offline, over this cache (its constants are read at import: patch them too)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _hub_cache(home: Path, repo: str, config: dict) -> None:
    """A Hugging Face cache holding only the repo's config.json (as hf_hub_download lays it out)."""
    root = home / "hub" / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("0" * 40)
    snap = root / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(config))


def test_card_writes_a_model_card_that_check_reads_offline(proj: Path, tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("huggingface_hub")
    from semantic_project import TINY_LLAMA

    from ftlang.cli import main

    home = tmp_path / "hf"
    _hub_cache(home, "someorg/Tiny-Llama-3", TINY_LLAMA)
    _offline_hub(monkeypatch, home)
    monkeypatch.chdir(proj)
    assert main(["card", "someorg/Tiny-Llama-3"]) == 0
    text = capsys.readouterr().out
    assert text == (proj / "cards" / "tiny_llama_3.ft").read_text()
    assert "model_card tiny_llama_3 {" in text and "kv_heads = 2" in text and "alias all_linear" in text
    recipe = 'import "cards/tiny_llama_3.ft"\n' + BASE.replace('local("models/tiny-llama")', "tiny_llama_3")
    plan = _plan(proj, recipe)
    assert plan.model.card == "tiny_llama_3" and plan.model.source.path == "someorg/Tiny-Llama-3"
    assert plan.resources.total_params == _plan(proj, BASE).resources.total_params


def test_card_offline_without_cache_is_a_diagnostic(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("huggingface_hub")
    from ftlang.cli import main

    _offline_hub(monkeypatch, tmp_path / "empty")
    monkeypatch.chdir(tmp_path)
    assert main(["card", "someorg/not-cached"]) == 1
    err = capsys.readouterr().err
    assert "FT223" in err and "offline" in err and not (tmp_path / "cards").exists()


def test_no_card_help_names_ftlang_card(proj: Path) -> None:
    (err,) = _errors(proj, BASE.replace('local("models/tiny-llama")', 'hf("someorg/unknown-model")'))
    assert err.code == "FT212" and "ftlang card someorg/unknown-model" in err.help


# ---------------------------------------------------------------------------- concat, head


def test_concat_and_head_run_and_count_every_row(proj: Path) -> None:
    """faq_train (1200 rows) + faq_val (20 rows) → 1220, then the first 1000: the stats balance."""
    from ftlang.data.steps import PipelineRunner

    text = variant("data d", 'data d = jsonl("data/faq_train.jsonl") { fields { instruction = "question", '
                   'output = "answer" } }\n  data v = jsonl("data/faq_val.jsonl") { fields { instruction = '
                   '"question", output = "answer" } }').replace("dataset train = d", "dataset train = d | concat(v) | head(1000)")
    plan = _plan(proj, text)
    assert [s.op for s in plan.datasets.pipelines["train"].steps] == ["concat", "head"]
    ds = PipelineRunner(plan, log=lambda _m: None).run("train")
    assert len(ds.rows) == 1000
    st = ds.stats
    assert (st["input"], st["concatenated"], st["sampled_out"], st["conservation"]) == (1200, 20, 220, True)
    assert [(s["rows_in"], s["rows_out"]) for s in st["steps"]] == [(1200, 1220), (1220, 1000)]


@pytest.mark.parametrize("step, code, word", [("concat(vv)", "FT201", "undefined"), ("head()", "FT105", "head"),
                                              ("head(0)", "FT103", "0")])
def test_concat_and_head_are_checked(proj: Path, step: str, code: str, word: str) -> None:
    errs = _errors(proj, BASE.replace("dataset train = d", f"dataset train = d | {step}"))
    assert errs and errs[0].code == code and word in errs[0].message


# ---------------------------------------------------------------------------- export push (never attempted)


def test_push_is_planned_and_refused_offline(proj: Path, tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    pytest.importorskip("huggingface_hub")
    from huggingface_hub import HfApi, constants

    from ftlang.backend.push import push_folder, push_to_hub
    from ftlang.diagnostics import DiagnosticError

    plan = _plan(proj, BASE.replace("}\n}", '}\n  export { push = "someorg/my-adapter" }\n}'))
    assert plan.export.push == "someorg/my-adapter"
    assert "push" not in json.loads(_plan(proj, BASE).to_json())["export"]
    exported = SimpleNamespace(merged_dir=None, adapter_dir=tmp_path / "adapter", model_dir=None)
    assert push_folder(exported) == tmp_path / "adapter"

    def never(*a, **k):
        raise AssertionError("a test must not reach the hub")

    monkeypatch.setattr(HfApi, "create_repo", never)
    monkeypatch.setattr(HfApi, "upload_folder", never)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DiagnosticError) as e:
        push_to_hub(plan, tmp_path / "adapter")
    d = e.value.diagnostics[0]
    assert d.code == "FT850" and "offline" in d.message and "huggingface-cli upload someorg/my-adapter" in d.help
    bad = plan.model_copy(update={"export": plan.export.model_copy(update={"push": "no-org"})})
    with pytest.raises(DiagnosticError) as e:
        push_to_hub(bad, tmp_path / "adapter")
    assert e.value.diagnostics[0].code == "FT850" and "org/name" in e.value.diagnostics[0].help


# ---------------------------------------------------------------------------- loss watchdog


def test_loss_watchdog_stops_on_a_spike(tiny_llama_dir, tmp_path) -> None:
    """Steady training for 12 steps, then the output head is blown up: the next step's loss is far above
    the recent mean, and the watchdog stops the run with FT716 (the same run without it keeps going)."""
    import torch
    from backend_helpers import lm_data
    from transformers import TrainerCallback

    from ftlang.backend.context import RunContext
    from ftlang.backend.faults import LossSpike, diagnose
    from ftlang.backend.load import load_tokenizer
    from ftlang.backend.methods import load_for_training
    from ftlang.backend.train import seed_everything, train

    class Spoil(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 12:
                with torch.no_grad():
                    for n, p in model.named_parameters():
                        if "lm_head" in n:  # sharp logits: a near-uniform tiny model becomes confidently wrong
                            p.mul_(300.0)
            return control

    def run(spike: float | None, out: Path):
        plan = _tiny(tiny_llama_dir, train={"max_steps": 16, "lr": 1e-4, "batch": 2} |
                     ({"loss_spike": spike} if spike else {}))
        tok = load_tokenizer(plan)
        seed_everything(plan)
        model = load_for_training(plan)
        return plan, lambda: train(RunContext(plan=plan, run_dir=out, model=model, tokenizer=tok,
                                              data=lm_data(tok, n_train=32), log=lambda s: None),
                                   tty=False, callbacks=[Spoil()])

    plan, go = run(1.5, tmp_path / "watched")
    with pytest.raises(LossSpike) as e:
        go()
    assert e.value.step == 13 and e.value.value > 1.5 * e.value.mean
    (d,) = diagnose(e.value, plan, "cpu", None)
    assert d.code == "FT716" and "step 13" in d.message and "lr" in d.help
    _, go = run(None, tmp_path / "unwatched")
    assert go().global_step == 16
