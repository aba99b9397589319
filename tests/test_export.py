"""Export: PEFT adapter (safetensors), merged model + card, post-export checks, refused merges."""

from __future__ import annotations

import json

import pytest
from eval_support import chat_prepared, make_plan

from ftlang.backend.context import RunContext
from ftlang.backend.export import export, model_card
from ftlang.diagnostics import DiagnosticError
from ftlang.plan import ExportPlan, Ia3Method, Loc, LoraMethod, PromptMethod, QloraMethod

LOC = Loc(file="recipe.ft", line=20, column=3, end_line=20, end_column=20)


def _lora_ctx(tiny_llama_dir, project, merge=True, init=False, method=None):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=init))
    plan = make_plan(project, method=method or LoraMethod(r=4, alpha=8, targets=["q_proj", "v_proj"]),
                     export=ExportPlan(merge=merge, loc=LOC))
    return RunContext(plan=plan, run_dir=project / "run", model=model, tokenizer=tok, data=chat_prepared(tok),
                      load_base=lambda: AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)))


def test_lora_export_and_merge(tiny_llama_dir, project):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ctx = _lora_ctx(tiny_llama_dir, project)
    ctx.run_dir.mkdir()
    res = export(ctx, {"perplexity": 12.5}, [{"text": "perplexity < 100", "passed": True}])
    ad = res.adapter_dir
    assert (ad / "adapter_model.safetensors").is_file() and (ad / "adapter_config.json").is_file()
    assert not list(ad.glob("*.bin"))
    assert (res.merged_dir / "model.safetensors").is_file() and (res.merged_dir / "tokenizer.json").is_file()
    card = (res.merged_dir / "README.md").read_text()
    assert card.startswith("---\n") and "plan_hash:" in card and "perplexity: 12.5" in card and "base_model:" in card
    checks = json.loads((res.dir / "check.json").read_text())
    assert checks["ok"] and checks["weights_differ_from_base"] and checks["generation"]["ok"]
    assert checks["generation"]["new_tokens"] <= checks["generation"]["max_new_tokens"]
    # the exported adapter reloads with the same logits as the trained model
    ids = torch.tensor([[5, 6, 7, 8]])
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), str(ad))
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, ctx.model(input_ids=ids).logits, atol=1e-6)
        merged = AutoModelForCausalLM.from_pretrained(str(res.merged_dir))
        assert torch.allclose(merged(input_ids=ids).logits, ctx.model(input_ids=ids).logits, atol=1e-4)
    assert res.artifacts().keys() == {"adapter", "merged", "check.json"}
    assert not [p for p in ctx.run_dir.iterdir() if p.name.startswith(".")]


def test_zero_adapter_merge_is_caught(tiny_llama_dir, project):
    ctx = _lora_ctx(tiny_llama_dir, project, init=True)  # B = 0: merging changes nothing
    ctx.run_dir.mkdir()
    with pytest.raises(DiagnosticError) as e:
        export(ctx, {}, [])
    assert e.value.diagnostics[0].code == "FT813" and e.value.diagnostics[0].span.line == 20
    assert not (ctx.run_dir / "export").exists()


def test_merge_refused_for_prompt_tuning(tiny_llama_dir, project):
    ctx = _lora_ctx(tiny_llama_dir, project, method=PromptMethod(virtual_tokens=4))
    ctx.run_dir.mkdir()
    with pytest.raises(DiagnosticError) as e:
        export(ctx, {}, [])
    assert e.value.diagnostics[0].code == "FT811"


def test_adapter_only_export_without_merge(tiny_llama_dir, project):
    ctx = _lora_ctx(tiny_llama_dir, project, merge=False)
    ctx.run_dir.mkdir()
    res = export(ctx, {}, [])
    assert res.merged_dir is None and (res.adapter_dir / "adapter_model.safetensors").is_file()
    assert "library_name: \"peft\"" in (res.adapter_dir / "README.md").read_text()


def test_ia3_merges(tiny_llama_dir, project):
    from peft import IA3Config, get_peft_model
    from transformers import AutoModelForCausalLM

    ctx = _lora_ctx(tiny_llama_dir, project, method=Ia3Method(targets=["k_proj", "down_proj"], feedforward=["down_proj"]))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    model = get_peft_model(base, IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"],
                                           init_ia3_weights=False))
    ctx.model = model
    ctx.run_dir.mkdir()
    assert export(ctx, {}, []).checks["weights_differ_from_base"]


def test_qlora_merges_into_unquantized_base_only(tiny_llama_dir, project):
    pytest.importorskip("bitsandbytes")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    try:
        qbase = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), quantization_config=quant)
    except Exception as e:  # noqa: BLE001 - a bitsandbytes build without CPU 4-bit support
        pytest.skip(f"4-bit loading unavailable: {e}")
    ctx = _lora_ctx(tiny_llama_dir, project, method=QloraMethod(r=4, alpha=8, targets=["q_proj", "v_proj"]))
    ctx.model = get_peft_model(qbase, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    ctx.run_dir.mkdir()
    res = export(ctx, {}, [])  # load_base gives the fp32 base
    merged = AutoModelForCausalLM.from_pretrained(str(res.merged_dir))
    assert merged.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    assert res.checks["weights_differ_from_base"]
    ctx.load_base = lambda: AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), quantization_config=quant)
    ctx.run_dir = project / "run2"
    ctx.run_dir.mkdir()
    with pytest.raises(DiagnosticError) as e:
        export(ctx, {}, [])
    assert e.value.diagnostics[0].code == "FT812"


def test_model_card_escapes_yaml(project):
    plan = make_plan(project)
    card = model_card(plan, "adapter", {"bleu": 0.5}, [{"text": 'a "b"\nc', "passed": False}], {"d": "x: y"})
    head = card.split("---\n")[1]
    yaml = pytest.importorskip("yaml")
    meta = yaml.safe_load(head)
    assert meta["ftlang"]["data_hashes"] == {"d": "x: y"}
    assert meta["ftlang"]["gates"] == [{"gate": 'a "b"\nc', "passed": False}]
    assert meta["ftlang"]["metrics"] == {"bleu": 0.5} and meta["base_model"] == "models/tiny-llama"


def test_classifier_lora_merge_and_after_training(tiny_bert_dir, project):
    from eval_support import FakePrepared
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ftlang.backend.finish import after_training, before_training
    from ftlang.plan import EvalPlan

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    load = lambda: AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir))  # noqa: E731
    model = get_peft_model(load(), LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"],
                                              init_lora_weights=False))
    rows = [dict(tok(t), labels=i % 3) for i, t in enumerate(["billing issue", "app crash", "great app", "refund"])]
    plan = make_plan(project, task="classify", labels=["a", "b", "c"], model_dir="models/tiny-bert",
                     method=LoraMethod(r=4, alpha=8, targets=["query", "value"]),
                     eval_=EvalPlan(metrics=["loss", "accuracy", "f1"], gates=[]), export=ExportPlan(merge=True, loc=LOC))
    ctx = RunContext(plan=plan, run_dir=project / "run", model=model, tokenizer=tok,
                     data=FakePrepared(validation=rows, validation_rows=[{"text": "x", "label": "a"}]), load_base=load)
    before_training(ctx)
    assert set(ctx.baseline_metrics) == {"loss", "accuracy", "f1"}
    assert after_training(ctx) == 0
    checks = json.loads((ctx.run_dir / "export" / "check.json").read_text())
    assert checks["ok"] and checks["weights_differ_from_base"] and "generation" not in checks
    assert json.loads((ctx.run_dir / "report.json").read_text())["metrics_after"].keys() == {"loss", "accuracy", "f1"}


def test_full_and_bottleneck_adapter_exports(tiny_llama_dir, project):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlang.backend.adapters import AdapterConfig, inject_adapters, is_adapter_dir
    from ftlang.plan import AdapterMethod, FullMethod

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    full = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    ctx = RunContext(plan=make_plan(project, method=FullMethod()), run_dir=project / "full", model=full,
                     tokenizer=tok, data=chat_prepared(tok))
    ctx.run_dir.mkdir()
    res = export(ctx, {}, [])
    assert res.adapter_dir is None and (res.model_dir / "model.safetensors").is_file()
    again = AutoModelForCausalLM.from_pretrained(str(res.model_dir))
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, full(input_ids=ids).logits)

    model = inject_adapters(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), AdapterConfig(bottleneck=8))
    ctx = RunContext(plan=make_plan(project, method=AdapterMethod(bottleneck=8)), run_dir=project / "adapter",
                     model=model, tokenizer=tok, data=chat_prepared(tok))
    ctx.run_dir.mkdir()
    res = export(ctx, {}, [])
    assert is_adapter_dir(res.adapter_dir) and (res.adapter_dir / "adapter_model.safetensors").is_file()
