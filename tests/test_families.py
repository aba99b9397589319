"""Every architecture family's card against the real model transformers builds from the same config: the
block's linear layers (leaf names, shapes, biases) and the parameter total are exact; and cards read from
the safetensors headers of architectures no family describes (Falcon, BLOOM, GPT-J) are exact too."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ftlang.plan import ModelSource
from ftlang.semantic.cards import (
    FAMILIES,
    MODEL_TYPES,
    card_from_config,
    classifier_params,
    layer_linears,
    total_params,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

V, H, I = 400, 64, 128  # noqa: E741 - vocab, hidden, intermediate
LABELS = 3
LLAMA_LIKE = dict(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256)
#: a tiny config per model_type; every family in cards.FAMILIES has one (a test checks)
CONFIGS: dict[str, dict] = {
    "llama": LLAMA_LIKE, "mistral": LLAMA_LIKE, "qwen2": LLAMA_LIKE, "granite": LLAMA_LIKE, "stablelm": LLAMA_LIKE,
    "olmo2": LLAMA_LIKE, "starcoder2": LLAMA_LIKE, "phi3": LLAMA_LIKE,
    "smollm3": LLAMA_LIKE,
    "qwen3": {**LLAMA_LIKE, "head_dim": 16},
    "gemma": {**LLAMA_LIKE, "num_key_value_heads": 1, "head_dim": 32},
    "gemma2": {**LLAMA_LIKE, "num_key_value_heads": 1, "head_dim": 32},
    "gemma3_text": {**LLAMA_LIKE, "num_key_value_heads": 1, "head_dim": 32},
    "phi": {**LLAMA_LIKE, "num_key_value_heads": 4},
    "gpt_neox": {**LLAMA_LIKE, "num_key_value_heads": 4},
    "opt": dict(vocab_size=V, hidden_size=H, ffn_dim=I, num_hidden_layers=2, num_attention_heads=4,
                word_embed_proj_dim=H, max_position_embeddings=256),
    "gpt2": dict(vocab_size=V, n_embd=H, n_inner=I, n_layer=2, n_head=4, n_positions=256),
    "bert": dict(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=256),
    "roberta": dict(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=258, type_vocab_size=1),
    "xlm-roberta": dict(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=258, type_vocab_size=1),
}
ENCODERS = ("bert", "roberta", "xlm-roberta")
#: model_types no family describes: their cards come from the weights' headers
UNDESCRIBED: dict[str, dict] = {
    "falcon": dict(vocab_size=V, hidden_size=H, num_hidden_layers=2, num_attention_heads=4),
    "bloom": dict(vocab_size=V, hidden_size=H, n_layer=2, n_head=4),
    "gptj": dict(vocab_size=V, n_embd=H, n_layer=2, n_head=4, n_positions=256, rotary_dim=8),
    "distilbert": dict(vocab_size=V, dim=H, hidden_dim=I, n_layers=2, n_heads=4),
}


def _model(model_type: str, kw: dict):
    ids = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "num_labels": LABELS}  # inside the tiny vocab
    cfg = transformers.AutoConfig.for_model(model_type, **{**ids, **kw})
    torch.manual_seed(0)
    if model_type in ENCODERS:  # ftlang loads an encoder to classify
        return transformers.AutoModelForSequenceClassification.from_config(cfg)
    if model_type == "distilbert":
        return transformers.AutoModel.from_config(cfg)
    return transformers.AutoModelForCausalLM.from_config(cfg)


def _block_linears(model) -> list[tuple[str, int, int, bool]]:
    """(leaf, d_in, d_out, has_bias) of the first block's nn.Linear / GPT-2 Conv1D layers."""
    from transformers.pytorch_utils import Conv1D

    out = []
    for name, mod in model.named_modules():
        parts = name.split(".")
        if "0" not in parts or not isinstance(mod, (torch.nn.Linear, Conv1D)):
            continue
        if any(p.isdigit() and p != "0" for p in parts[: parts.index("0")]):
            continue
        d_in, d_out = (mod.nx, mod.nf) if isinstance(mod, Conv1D) else (mod.in_features, mod.out_features)
        out.append((parts[-1], d_in, d_out, mod.bias is not None))
    return sorted(out)


def test_every_family_has_a_config_here() -> None:
    assert set(MODEL_TYPES) == set(CONFIGS)


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_family_card_is_exact(model_type: str) -> None:
    model = _model(model_type, CONFIGS[model_type])
    cfg = json.loads(model.config.to_json_string())  # what save_pretrained writes as config.json
    card = card_from_config(cfg, ModelSource(kind="local", path="m"))
    assert card.family == MODEL_TYPES[model_type]
    assert sorted(layer_linears(card)) == _block_linears(model)
    head = classifier_params(card, LABELS) if model_type in ENCODERS else 0  # the classifier model's head
    assert total_params(card) + head == sum(p.numel() for p in model.parameters())
    assert set(card.modules) == {leaf for leaf, *_ in _block_linears(model)}
    assert set(card.aliases["all_linear"]) == set(card.modules)


def test_families_name_their_layout() -> None:
    for name, fam in FAMILIES.items():
        assert fam.model_types and all(MODEL_TYPES[t] == name for t in fam.model_types)


@pytest.mark.parametrize("model_type", sorted(UNDESCRIBED))
def test_card_from_the_weights_headers(model_type: str, tmp_path: Path) -> None:
    from ftlang.semantic.cards import CardError, UnknownFamily
    from ftlang.semantic.weights_meta import card_from_weights

    assert model_type not in MODEL_TYPES
    model = _model(model_type, UNDESCRIBED[model_type])
    model.save_pretrained(str(tmp_path))
    cfg = json.loads((tmp_path / "config.json").read_text())
    with pytest.raises(UnknownFamily):
        card_from_config(cfg, ModelSource(kind="local", path="m"))
    card = card_from_weights(cfg, tmp_path, ModelSource(kind="local", path="m"))
    assert card.family == model_type and card.layers == 2 and card.hidden == H and card.vocab == V
    assert sorted(layer_linears(card)) == _block_linears(model)
    assert total_params(card) == sum(p.numel() for p in model.parameters())
    if model_type == "distilbert":
        assert card.arch == "encoder" and card.intermediate == I
    else:
        assert card.tie_embeddings == (model.get_output_embeddings().weight is model.get_input_embeddings().weight)
    assert card.aliases["attention"] and card.aliases["mlp"]
    assert set(card.aliases["attention"]) | set(card.aliases["mlp"]) == set(card.modules)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CardError, match="no safetensors"):
        card_from_weights(cfg, tmp_path, ModelSource(kind="local", path="m"))


def test_a_sharded_checkpoint_is_read_through_its_index(tmp_path: Path) -> None:
    from ftlang.semantic.weights_meta import card_from_weights

    model = _model("bloom", UNDESCRIBED["bloom"])
    model.save_pretrained(str(tmp_path), max_shard_size="60KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    card = card_from_weights(json.loads((tmp_path / "config.json").read_text()), tmp_path,
                             ModelSource(kind="local", path="m"))
    assert total_params(card) == sum(p.numel() for p in model.parameters())


def test_a_recipe_on_an_undescribed_architecture_trains(tmp_path: Path) -> None:
    """`local(...)` of a GPT-J folder: check derives its card from the weights, and `ftlang run` trains LoRA on
    exactly the parameter count the plan estimated."""
    import subprocess

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import build_tokenizer

    proj = tmp_path / "p"
    (proj / "models" / "gptj").mkdir(parents=True)
    tok = build_tokenizer(proj / "models" / "gptj")
    model = _model("gptj", {**UNDESCRIBED["gptj"], "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
                            "bos_token_id": tok.eos_token_id})
    model.save_pretrained(str(proj / "models" / "gptj"))
    (proj / "data").mkdir()
    rows = [{"q": f"What is {i} plus {i}?", "a": f"It is {2 * i}."} for i in range(24)]
    (proj / "data" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (proj / "r.ft").write_text("""
recipe gptj_lora {
  model = local("models/gptj")
  data d = jsonl("data/d.jsonl") { format = instruction, fields { instruction = "q", output = "a" } }
  dataset train = d | to_chat()
  split train { validation = 25%, seed = 0 }
  method lora { r = 4, alpha = 8, targets = attention }
  train { lr = 1e-3, max_steps = 2, batch = 4, max_seq_len = 64, precision = fp32 }
}
""")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    plan = subprocess.run([sys.executable, "-m", "ftlang", "plan", "r.ft", "-o", "plan.json"], cwd=proj,
                          capture_output=True, text=True, env=env, timeout=120)
    assert plan.returncode == 0, plan.stderr
    data = json.loads((proj / "plan.json").read_text())
    assert data["model"]["family"] == "gptj"  # the block's linears, by path: attn.*, then mlp.*
    assert data["model"]["modules"] == ["k_proj", "out_proj", "q_proj", "v_proj", "fc_in", "fc_out"]
    assert data["method"]["targets"] == ["k_proj", "out_proj", "q_proj", "v_proj"]
    want = data["resources"]["trainable_params"]
    assert want == 2 * 4 * 4 * (H + H)  # 2 layers × 4 projections × r·(d_in + d_out)
    run = subprocess.run([sys.executable, "-m", "ftlang", "run", "r.ft", "--out", "runs/a"], cwd=proj,
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"method lora · {want:,} of" in run.stdout + run.stderr
    assert (proj / "runs" / "a" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("model_type", ["bert", "roberta", "llama"])
def test_a_classify_plan_counts_the_head_peft_trains(model_type: str, tmp_path: Path) -> None:
    """task = classify: the plan's trainable count is PEFT's own (SEQ_CLS trains the new head in full)."""
    from ftlang.backend.methods import load_for_training, trainable_parameters
    from ftlang.semantic.check import check_file

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import build_tokenizer

    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    build_tokenizer(folder)
    base = transformers.AutoModel if model_type in ENCODERS else transformers.AutoModelForCausalLM
    base.from_config(transformers.AutoConfig.for_model(model_type, pad_token_id=0, **CONFIGS[model_type])
                     ).save_pretrained(str(folder))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.jsonl").write_text("".join(json.dumps({"text": f"t {i}", "label": "ab"[i % 2]}) + "\n"
                                                       for i in range(8)))
    targets = "[query, value]" if model_type in ENCODERS else "[q_proj, v_proj]"
    (tmp_path / "r.ft").write_text(f"""
recipe c {{
  model = local("models/m")
  task = classify(labels = [a, b, c])
  data d = jsonl("data/d.jsonl") {{ format = classification }}
  dataset train = d
  method lora {{ r = 4, alpha = 8, targets = {targets} }}
  train {{ max_steps = 1, batch = 2, max_seq_len = 16 }}
}}
""")
    res = check_file(tmp_path / "r.ft")
    assert res.plan is not None, [f"{d.code} {d.message}" for d in res.diagnostics]
    trainable, total = trainable_parameters(load_for_training(res.plan))
    assert res.plan.resources.trainable_params == trainable
