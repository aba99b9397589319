"""Pipeline steps (`dataset NAME = a | step(...)`): one binder per step model of ftlang/plan.py.

A binder takes the call as written and a StepEnv (params, the names a step may refer to, the project
root) and returns the step's args as plain values; problems are raised as `Problem` at their node.
The plan model then validates the args. Adding a step: declare its model in plan.py (args, defaults,
`signature`), register a binder here with `@binds(Model)` and a runner in data/steps.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftlang import plan as P
from ftlang.diagnostics import Diagnostic, error
from ftlang.semantic.context import call_problems, loc, local_path
from ftlang.semantic.exprs import to_expr
from ftlang.semantic.paths import is_dir
from ftlang.semantic.schema import CANONICAL_FIELDS, KeySchema
from ftlang.semantic.values import Params, Problem, convert, did_you_mean
from ftlang.syntax import ast

STEP_NAMES = tuple(P.STEP_MODELS)


@dataclass
class StepEnv:
    """What a step binder may read, and where it reports problems that do not stop the step."""

    params: Params
    names: frozenset[str]  # data sources and datasets a step may refer to (mix)
    root: Path
    diags: list[Diagnostic] = field(default_factory=list)


Binder = Callable[[ast.Call, StepEnv], dict[str, Any]]
STEP_BINDERS: dict[type[P.BaseModel], Binder] = {}


def binds(model: type[P.BaseModel]) -> Callable[[Binder], Binder]:
    def register(fn: Binder) -> Binder:
        assert model not in STEP_BINDERS, f"{model.__name__} has two binders"
        STEP_BINDERS[model] = fn
        return fn
    return register


def bind_step(stage: ast.Ident | ast.Call, params: Params, names: frozenset[str], root: Path
              ) -> tuple[P.StepPlan | None, list[Diagnostic]]:
    """One `| step(...)` → its plan model (None when it is wrong) and the step's diagnostics; `names`:
    the data sources and datasets a step may refer to."""
    env = StepEnv(params, names, root)
    return _bind_step(stage, env), env.diags


def _bind_step(stage: ast.Ident | ast.Call, env: StepEnv) -> P.StepPlan | None:
    name = stage.name
    span = stage.name_span if isinstance(stage, ast.Call) else stage.span
    call = stage if isinstance(stage, ast.Call) else ast.Call(stage.span, stage.name, stage.span, (), ())
    model = P.STEP_MODELS.get(name)
    if model is None:
        guess = did_you_mean(name, STEP_NAMES)
        env.diags.append(error("FT108", f"unknown pipeline step `{name}`", span,
                               f"did you mean `{guess}`?" if guess else f"steps: {', '.join(STEP_NAMES)}"))
        return None
    problems = call_problems(call)
    if problems:
        env.diags.extend(problems)
        return None
    try:
        args = STEP_BINDERS[model](call, env)
    except Problem as p:
        env.diags.append(p.diag)
        return None
    try:
        return model(args=args, loc=loc(stage.span, env.root))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        env.diags.append(error("FT117", f"invalid {name}(...) argument `{where}`: {first.get('msg')}", call.span,
                               f"see `ftlang schema` for {name}'s arguments"))
        return None


def _arg(call: ast.Call, name: str, index: int | None) -> ast.Value | None:
    kw = call.kwarg(name)
    if kw is not None:
        return kw.value
    return call.args[index] if index is not None and len(call.args) > index else None


def _value(env: StepEnv, call: ast.Call, name: str, typ: str, default=None, index: int | None = None, **ks_kw):
    """A typed argument by keyword (or position), checked like a block key."""
    node = _arg(call, name, index)
    if node is None:
        return default
    return convert(node, KeySchema(name, typ, f"{call.name}({name} = ...)", **ks_kw), env.params)


@binds(P.DedupeStep)
def _dedupe(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    mode = _arg(call, "mode", 0)
    word = mode.name if isinstance(mode, ast.Ident) else mode.value if isinstance(mode, ast.Str) else "exact"
    if word not in ("exact", "normalized"):
        raise Problem(error("FT104", f"`{word}` is not a dedupe mode", mode.span, "dedupe(exact) or dedupe(normalized)"))
    return {"mode": word}


@binds(P.FilterStep)
def _filter(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    if len(call.args) != 1:
        raise Problem(error("FT113", "filter(...) takes one condition", call.span, "e.g. filter(len(output) > 0)"))
    return {"expr": to_expr(env, call.args[0], CANONICAL_FIELDS)}


@binds(P.ToChatStep)
def _to_chat(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    return {"system": _value(env, call, "system", "str", None, 0)}


@binds(P.ToInstructionStep)
def _to_instruction(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    return {}


@binds(P.ToCompletionStep)
def _to_completion(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    return {"template": _value(env, call, "template", "str", None, 0)}


#: the keyword arguments every augmentation accepts: AugmentOp's fields
_AUGMENT_KEYS = tuple(k for k in P.AugmentOp.model_fields if k != "op")


@binds(P.AugmentStep)
def _augment(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    ops = [_augment_op(a, env) for a in call.args]
    if not ops:
        raise Problem(error("FT114", "augment(...) needs at least one augmentation", call.span,
                            "e.g. augment(synonyms(p = 0.1), copies = 1)"))
    return {"ops": ops, "copies": _value(env, call, "copies", "int", 1, min=1),
            "seed": _value(env, call, "seed", "int", 0, min=0)}


def _augment_op(a: ast.Value, env: StepEnv) -> dict[str, Any]:
    if not isinstance(a, ast.Call) or a.name not in P.AUGMENT_OPS:
        nm = getattr(a, "name", "?")
        guess = did_you_mean(nm, P.AUGMENT_OPS)
        raise Problem(error("FT108", f"unknown augmentation `{nm}`", a.span,
                            f"did you mean `{guess}`?" if guess else f"augmentations: {', '.join(P.AUGMENT_OPS)}"))
    op: dict[str, Any] = {"op": a.name}
    for k in a.kwargs:
        v = k.value
        if k.name not in _AUGMENT_KEYS:
            guess = did_you_mean(k.name, _AUGMENT_KEYS)
            raise Problem(error("FT109", f"unknown argument `{k.name}` to {a.name}(...)"
                                + (f": did you mean `{guess}`?" if guess else ""), k.span,
                                f"{a.name}(...) takes " + ", ".join(f"{n} = ..." for n in _AUGMENT_KEYS)))
        if k.name == "p":
            op["p"] = _value(env, a, "p", "fraction", min=0, max=1)
        elif k.name in ("via", "model", "back") and isinstance(v, ast.Str):
            op[k.name] = _model_ref(env, v)
        else:
            op[k.name] = v.value if isinstance(v, (ast.Str, ast.Int, ast.Float, ast.Bool, ast.Percent)) \
                else v.name if isinstance(v, ast.Ident) else None
    return op


def _model_ref(env: StepEnv, node: ast.Str) -> str | None:
    """An augmentation model (via/model/back): a local folder becomes project-relative, else a hub id."""
    local = Path(node.span.file).parent / node.value
    if node.value.startswith((".", "/")) or is_dir(local):
        return local_path(env, node, "model path", expect="dir")
    return node.value


def _other(call: ast.Call, env: StepEnv, example: str) -> str:
    """The data source or dataset a step names (mix, concat)."""
    other = _arg(call, "other", 0)
    if not isinstance(other, ast.Ident):
        raise Problem(error("FT114", f"{call.name}(...) needs a data source or dataset name", call.span,
                            f"e.g. {example}"))
    if other.name not in env.names:
        guess = did_you_mean(other.name, env.names)
        raise Problem(error("FT201", f"undefined data source or dataset `{other.name}`", other.span,
                            f"did you mean `{guess}`?" if guess else "declare it with `data NAME = ...`"))
    return other.name


@binds(P.ConcatStep)
def _concat(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    return {"other": _other(call, env, "concat(more_rows)")}


@binds(P.HeadStep)
def _head(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    n = _value(env, call, "n", "int", None, 0, min=1)
    if n is None:
        raise Problem(error("FT105", "head(...) needs n", call.span, "e.g. head(1000)"))
    return {"n": n}


@binds(P.MixStep)
def _mix(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    other = _other(call, env, "mix(general, ratio = 10%)")
    ratio = _value(env, call, "ratio", "fraction", None, 1, min=0, max=1, min_open=True, max_open=True)
    if ratio is None:
        raise Problem(error("FT105", "mix(...) needs ratio = N%", call.span, "e.g. mix(general, ratio = 10%)"))
    return {"other": other, "ratio": ratio, "seed": _value(env, call, "seed", "int", None, min=0)}


@binds(P.SampleStep)
def _sample(call: ast.Call, env: StepEnv) -> dict[str, Any]:
    n = _value(env, call, "n", "int", None, 0, min=1)
    if n is None:
        raise Problem(error("FT105", "sample(...) needs n", call.span, "e.g. sample(n = 1000, seed = 0)"))
    return {"n": n, "seed": _value(env, call, "seed", "int", 0, min=0)}
