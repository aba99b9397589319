"""Shared fixtures. Tiny models are built once per test session (seconds) into a temp dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A saved 2-layer Llama + BPE tokenizer with a ChatML template (see tests/tiny_models.py)."""
    pytest.importorskip("torch")
    from tiny_models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A saved 2-layer BERT for 3-way sequence classification on MiniLM's tokenizer."""
    pytest.importorskip("torch")
    from tiny_models import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), num_labels=3)


@pytest.fixture
def project(tmp_path) -> Path:
    """An empty project root (has .git, so path confinement has a root)."""
    (tmp_path / ".git").mkdir()
    return tmp_path
