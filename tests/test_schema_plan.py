"""The checker's key tables are read from the plan models: every key maps to a plan field with the
same default, type and range, and every plan field a user sets is reachable from a key or a block."""

from __future__ import annotations

from typing import get_args

import pytest

from ftlang import plan as P
from ftlang.semantic import schema as S

PLAN_BLOCKS = [b for b in S.BLOCKS if b.model is not None]

#: keys the checker types wider than the plan field, and why: `alpha = 16.0` is accepted and the binder
#: writes the integer 16 (a fractional alpha reaches the plan's own validation, FT102)
WIDER = {("method.lora", "alpha"), ("method.qlora", "alpha")}


def test_plan_backed_blocks_cover_the_plan():
    names = {b.name for b in PLAN_BLOCKS}
    assert {"train", "hardware", "eval", "export", "split", "data", "early_stop", "generation", "quant",
            "register"} <= names
    assert {f"method.{k}" for k in S.METHOD_KINDS} <= names
    assert set(S.METHOD_MODELS.values()) == set(get_args(get_args(P.Method)[0]))


@pytest.mark.parametrize("b", PLAN_BLOCKS, ids=lambda b: b.name)
def test_every_key_maps_to_a_plan_field_with_its_default_and_type(b):
    fields = b.model.model_fields
    for fk in S.key_fields(b.model):
        info = fields[fk.field]
        meta = S.field_meta(info)
        assert b.key(fk.name) is not None, f"{b.name}.{fk.name} is declared but not a key"
        if "default" not in meta and not info.is_required():  # no binder-supplied default: the plan's
            assert fk.default == info.default, f"{b.name}.{fk.name}"
        text = repr(info.annotation)
        expected = {"int": "int", "number": "float", "bool": "bool", "str": "str", "size": "int",
                    "fraction": "float", "name": "str", "ident_list": "list", "enum_list": "list"}.get(fk.type)
        if expected and (b.name, fk.name) not in WIDER:
            assert expected in text, f"{b.name}.{fk.name}: {fk.type} key over a {text} field"
        if fk.type == "enum":
            assert set(get_args(S._unwrap(info.annotation))) <= set(fk.enum), f"{b.name}.{fk.name}"


@pytest.mark.parametrize("b", PLAN_BLOCKS, ids=lambda b: b.name)
def test_every_user_field_is_a_key_or_a_block(b):
    reached = {k.field for k in S.key_fields(b.model)} | set(S.nested_blocks(b.model).values())
    for name, info in b.model.model_fields.items():
        if name in ("loc", "kind") or S.field_meta(info).get("internal"):
            continue
        assert name in reached, f"plan field {b.model.__name__}.{name} has no recipe key or block"
    for nested in b.blocks:
        assert S.block(nested) is not None, f"{b.name} nests unknown block {nested}"


def test_renamed_keys_are_declared_on_their_field():
    """One concept, one name per layer, the mapping written once on the plan field."""
    assert S.block("hardware").key("memory").field == "memory_bytes"
    assert S.block("method.prompt").key("init").type == "special"
    assert S.field_meta(P.PromptMethod.model_fields["init_text"])["key"] == "init"
    assert {f.field for f in S.key_fields(P.TrainPlan) if f.name == "warmup"} == {"warmup_ratio", "warmup_steps"}
    assert S.block("register").key("registry").field == "dir"


def test_public_keys_api():
    train = S.keys("train")
    lr = next(k for k in train if k.name == "lr")
    assert (lr.type, lr.default, lr.min, lr.min_open) == ("number", P.TrainPlan().lr, 0, True)
    assert S.keys("nope") == []
