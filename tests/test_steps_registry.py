"""Every pipeline step is declared once (its plan model) and has exactly one binder and one runner."""

from __future__ import annotations

from ftlang import plan as P
from ftlang.semantic.context import CALL_SIGNATURES
from ftlang.semantic.steps import STEP_BINDERS


def test_every_step_model_has_a_binder_a_runner_and_a_signature():
    from ftlang.data.steps import STEP_RUNNERS

    models = set(P.STEP_MODELS.values())
    assert set(STEP_BINDERS) == models
    assert set(STEP_RUNNERS) == models
    for op, model in P.STEP_MODELS.items():
        assert CALL_SIGNATURES[op] == model.signature
        assert model.__doc__, f"{op}: a one-line doc for the language reference"


def test_step_plan_json_keeps_op_args_loc():
    """The plan's step JSON is {"op", "args", "loc"}: an optional argument not given is left out, so plan
    hashes of recipes that do not write it do not move."""
    mix = P.make_step("mix", {"other": "g", "ratio": 0.2})
    assert mix.model_dump(mode="json") == {"op": "mix", "args": {"other": "g", "ratio": 0.2}, "loc": None}
    aug = P.make_step("augment", {"ops": [{"op": "swap"}]})
    assert aug.model_dump(mode="json")["args"] == {"ops": [{"op": "swap", "p": 0.1}], "copies": 1, "seed": 0}
