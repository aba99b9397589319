"""The estimator's activation, logits and gradient terms against the tensors one real training step allocates
(bench/estimator_tensors.py: a small Llama from a config, transformers' loss or backend/loss.py's chunked loss,
PEFT LoRA), so a change to either side that breaks their agreement fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parent.parent / "bench" / "estimator_tensors.py"
_spec = importlib.util.spec_from_file_location("estimator_tensors", _BENCH)
tensors = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = tensors  # its dataclass looks its module up
_spec.loader.exec_module(tensors)
Case = tensors.Case


@pytest.mark.parametrize("case", [
    Case("bf16", "full", False, False),  # 12 bytes per logit at log_softmax's backward, eager norms in fp32
    Case("bf16", "full", True, True),  # checkpointed inputs, one slice of logits, the head's gradient
    Case("fp32", "full", True, True),  # the head's gradients summed out of place across the slices
    Case("bf16", "lora", True, True),
    Case("fp32", "lora", False, False),
], ids=lambda c: c.label)
def test_estimate_matches_the_tensors_a_step_allocates(case) -> None:
    ratio = tensors.estimated(case) / tensors.live_peak(case)
    assert 0.9 <= ratio <= 1.1, f"{case.label}: estimate / measured {ratio:.2f}"
