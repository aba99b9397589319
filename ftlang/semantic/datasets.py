"""Data sources (`data NAME = jsonl(...) {...}`) and dataset pipelines (`dataset NAME = a | step(...)`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from ftlang import plan as P
from ftlang.diagnostics import error
from ftlang.expr import FUNCTIONS
from ftlang.semantic.context import (
    AUGMENT_OPS,
    DATA_SOURCES,
    MODEL_SOURCES,
    STEPS,
    RecipeContext,
    build_model,
    call_problems,
    loc,
    local_path,
    str_arg,
)
from ftlang.semantic.paths import is_dir
from ftlang.semantic.schema import CANONICAL_FIELDS, block
from ftlang.semantic.values import Problem, check_block, convert, did_you_mean
from ftlang.syntax import ast

# ---------------------------------------------------------------------------- data


def bind_data(ctx: RecipeContext, decl: ast.DataDecl) -> None:
    src = decl.source
    if isinstance(src, ast.Call) and src.name in MODEL_SOURCES:
        ctx.err("FT208", f"`{src.name}(...)` is a model source where a data source is expected", src.name_span,
                "data comes from jsonl(...), json(...), csv(...), parquet(...), chat_jsonl(...) or hf_dataset(...); "
                "a model goes in `model = ...`")
        return
    if not isinstance(src, ast.Call) or src.name not in DATA_SOURCES:
        name = src.name if isinstance(src, (ast.Call, ast.Ident)) else "?"
        guess = did_you_mean(name, DATA_SOURCES)
        ctx.err("FT108", f"unknown data source `{name}`", src.name_span if isinstance(src, ast.Call) else src.span,
                f"did you mean `{guess}(...)`?" if guess else f"data sources: {', '.join(DATA_SOURCES)}")
        return
    problems = call_problems(src)
    if problems:
        ctx.diags.extend(problems)
        return
    diags = ctx.diags
    tb = check_block(decl.body or (), block("data"), decl.span, ctx.params, diags)
    kw: dict[str, Any] = {"name": decl.name, "kind": src.name, "loc": loc(decl.span, ctx.root)}
    if src.name == "hf_dataset":
        hf = str_arg(src, 0, "name", ctx.params)
        if hf is None:
            ctx.err("FT111", "hf_dataset(...) needs the dataset id as a string", src.span,
                    'hf_dataset("org/name", split = "train")')
            return
        kw.update(hf_name=hf.value, hf_split=_opt(src, "split"), hf_revision=_opt(src, "revision"),
                  hf_config=_opt(src, "config"))
    else:
        p = str_arg(src, 0, "path", ctx.params)
        if p is None:
            ctx.err("FT111", f"{src.name}(...) needs a file path as a string", src.span,
                    f'{src.name}("data/file.{src.name.replace("chat_", "")}")')
            return
        relp = local_path(ctx, p, "data path")
        if relp is None:
            return
        kw["path"] = relp
    kw.update(tb.plan_kwargs())
    kw.setdefault("format", "chat" if src.name == "chat_jsonl" else "instruction")
    fields_tb = tb.blocks.get("fields")
    if fields_tb is not None:
        kw["fields"] = {k: f.value for k, f in fields_tb.values.items()}
    if tb.has("on_error"):
        oe = _on_error(ctx, tb.values["on_error"].node)
        if oe is None:
            return
        kw["on_error"] = oe
    ctx.data[decl.name] = build_model(ctx, P.SourcePlan, kw, decl.span)


def _opt(call: ast.Call, name: str) -> str | None:
    kw = call.kwarg(name)
    if kw is None:
        return None
    if isinstance(kw.value, ast.Str):
        return kw.value.value
    if isinstance(kw.value, ast.Ident):
        return kw.value.name
    return None


def _on_error(ctx: RecipeContext, node: ast.Value) -> P.OnError | None:
    where = loc(node.span, ctx.root)
    if isinstance(node, ast.Ident) and node.name in ("fail", "skip"):
        return P.OnError(mode=node.name, loc=where)
    if isinstance(node, ast.Call) and node.name == "skip":
        problems = call_problems(node)
        if problems:
            ctx.diags.extend(problems)
            return None
        mx = node.kwarg("max")
        val = mx.value if mx is not None else (node.args[0] if node.args else None)
        if isinstance(val, ast.Percent) and 0 < val.value <= 1:
            return P.OnError(mode="skip", max_fraction=val.value, loc=where)
        if isinstance(val, ast.Int) and val.value >= 0:
            return P.OnError(mode="skip", max_rows=val.value, loc=where)
        if val is None:
            return P.OnError(mode="skip", loc=where)
        ctx.err("FT112", "skip(max = ...) expects a row count or a percentage", val.span,
                "write skip(max = 20) or skip(max = 1%)")
        return None
    ctx.err("FT104", "`on_error` is `fail` or `skip(max = N | N%)`", node.span,
            "write on_error = fail, or on_error = skip(max = 1%)")
    return None


# ---------------------------------------------------------------------------- pipelines & expressions


#: what a gate may read: every metric the plan knows and the two verdicts; a param of another
#: name in a gate stands for its value
GATE_NAMES = frozenset(get_args(get_args(P.EvalPlan.model_fields["metrics"].annotation)[0])) | {
    "overfitting", "forgetting"}


def to_expr(ctx: RecipeContext, node: ast.Value, names: tuple[str, ...] | None) -> Any:
    """An AST expression → plan Expr; `names` limits the identifiers (None: any, checked elsewhere)."""
    if isinstance(node, ast.Compare):
        return P.CompareExpr(op=node.op, left=to_expr(ctx, node.left, names), right=to_expr(ctx, node.right, names))
    if isinstance(node, ast.BoolOp):
        return P.BoolExpr(kind=node.op, left=to_expr(ctx, node.left, names), right=to_expr(ctx, node.right, names))
    if isinstance(node, ast.Not):
        return P.NotExpr(operand=to_expr(ctx, node.operand, names))
    if isinstance(node, ast.Arith):
        return P.ArithExpr(op=node.op, left=to_expr(ctx, node.left, names), right=to_expr(ctx, node.right, names))
    if isinstance(node, ast.Neg):
        inner = to_expr(ctx, node.operand, names)
        if isinstance(inner, P.ConstExpr) and isinstance(inner.value, (int, float)) \
                and not isinstance(inner.value, bool):
            return P.ConstExpr(value=-inner.value)
        return P.ArithExpr(op="-", left=P.ConstExpr(value=0), right=inner)
    if isinstance(node, ast.Call):
        if node.name not in FUNCTIONS:
            guess = did_you_mean(node.name, FUNCTIONS)
            raise Problem(error("FT201", f"unknown function `{node.name}`", node.name_span,
                                f"did you mean `{guess}`?" if guess else f"functions: {', '.join(FUNCTIONS)}"))
        return P.CallExpr(fn=node.name, args=[to_expr(ctx, a, names) for a in node.args])
    if isinstance(node, ast.Ident):
        if names is None and node.name in ctx.params and node.name not in GATE_NAMES:
            return to_expr(ctx, ctx.params[node.name], names)  # `gate perplexity < max_ppl`
        if names is not None and node.name not in names:
            if node.name in ctx.params:
                return to_expr(ctx, ctx.params[node.name], names)
            guess = did_you_mean(node.name, names)
            raise Problem(error("FT201", f"unknown field `{node.name}` in a filter", node.span,
                                f"did you mean `{guess}`?" if guess else f"row fields: {', '.join(names)}"))
        return P.NameExpr(name=node.name)
    if isinstance(node, (ast.Str, ast.Int, ast.Float, ast.Bool, ast.Percent)):
        return P.ConstExpr(value=node.value)
    raise Problem(error("FT113", "not an expression", node.span, "use comparisons, and/or/not, names and literals"))


def _kw_value(ctx: RecipeContext, call: ast.Call, name: str, typ: str, default=None, index: int | None = None,
              **ks_kw):
    from ftlang.semantic.schema import KeySchema

    kw = call.kwarg(name)
    node = kw.value if kw is not None else (call.args[index] if index is not None and len(call.args) > index
                                            else None)
    if node is None:
        return default
    return convert(node, KeySchema(name, typ, f"{call.name}({name} = ...)", **ks_kw), ctx.params)


def _step(ctx: RecipeContext, stage: ast.Ident | ast.Call, names_ok: set[str]) -> P.StepPlan | None:
    name = stage.name
    span = stage.name_span if isinstance(stage, ast.Call) else stage.span
    call = stage if isinstance(stage, ast.Call) else ast.Call(stage.span, stage.name, stage.span, (), ())
    if name not in STEPS:
        guess = did_you_mean(name, STEPS)
        ctx.err("FT108", f"unknown pipeline step `{name}`", span,
                f"did you mean `{guess}`?" if guess else f"steps: {', '.join(STEPS)}")
        return None
    problems = call_problems(call)
    if problems:
        ctx.diags.extend(problems)
        return None
    args: dict[str, Any] = {}
    try:
        if name == "dedupe":
            mode = call.args[0] if call.args else (call.kwarg("mode").value if call.kwarg("mode") else None)
            word = mode.name if isinstance(mode, ast.Ident) else mode.value if isinstance(mode, ast.Str) else "exact"
            if word not in ("exact", "normalized"):
                raise Problem(error("FT104", f"`{word}` is not a dedupe mode", mode.span,
                                    "dedupe(exact) or dedupe(normalized)"))
            args["mode"] = word
        elif name == "filter":
            if len(call.args) != 1:
                raise Problem(error("FT113", "filter(...) takes one condition", call.span,
                                    "e.g. filter(len(output) > 0)"))
            args["expr"] = to_expr(ctx, call.args[0], CANONICAL_FIELDS).model_dump(mode="json")
        elif name == "to_chat":
            args["system"] = _kw_value(ctx, call, "system", "str", None, 0)
        elif name == "to_completion":
            args["template"] = _kw_value(ctx, call, "template", "str", None, 0)
        elif name == "augment":
            ops = []
            for a in call.args:
                if not isinstance(a, ast.Call) or a.name not in AUGMENT_OPS:
                    nm = getattr(a, "name", "?")
                    guess = did_you_mean(nm, AUGMENT_OPS)
                    raise Problem(error("FT108", f"unknown augmentation `{nm}`", a.span,
                                        f"did you mean `{guess}`?" if guess else f"augmentations: {', '.join(AUGMENT_OPS)}"))
                op: dict[str, Any] = {"op": a.name}
                for k in a.kwargs:
                    if k.name == "p":
                        op["p"] = _kw_value(ctx, a, "p", "fraction", min=0, max=1)
                    else:
                        v = k.value
                        if k.name in ("via", "model", "back") and isinstance(v, ast.Str):
                            op[k.name] = _model_ref(ctx, v)
                            continue
                        op[k.name] = v.value if isinstance(v, (ast.Str, ast.Int, ast.Float, ast.Bool, ast.Percent)) \
                            else v.name if isinstance(v, ast.Ident) else None
                op.setdefault("p", 0.1)
                ops.append(op)
            if not ops:
                raise Problem(error("FT114", "augment(...) needs at least one augmentation", call.span,
                                    "e.g. augment(synonyms(p = 0.1), copies = 1)"))
            args["ops"] = ops
            args["copies"] = _kw_value(ctx, call, "copies", "int", 1, min=1)
            args["seed"] = _kw_value(ctx, call, "seed", "int", 0, min=0)
        elif name == "mix":
            other = call.args[0] if call.args else (call.kwarg("other").value if call.kwarg("other") else None)
            if not isinstance(other, ast.Ident):
                raise Problem(error("FT114", "mix(...) needs a data source or dataset name", call.span,
                                    "e.g. mix(general, ratio = 10%)"))
            if other.name not in names_ok:
                guess = did_you_mean(other.name, names_ok)
                raise Problem(error("FT201", f"undefined data source or dataset `{other.name}`", other.span,
                                    f"did you mean `{guess}`?" if guess else "declare it with `data NAME = ...`"))
            args["other"] = other.name
            ratio = _kw_value(ctx, call, "ratio", "fraction", None, 1, min=0, max=1, min_open=True, max_open=True)
            if ratio is None:
                raise Problem(error("FT105", "mix(...) needs ratio = N%", call.span, "e.g. mix(general, ratio = 10%)"))
            args["ratio"] = ratio
            seed = _kw_value(ctx, call, "seed", "int", None, min=0)
            if seed is not None:
                args["seed"] = seed
        elif name == "sample":
            n = _kw_value(ctx, call, "n", "int", None, 0, min=1)
            if n is None:
                raise Problem(error("FT105", "sample(...) needs n", call.span, "e.g. sample(n = 1000, seed = 0)"))
            args["n"] = n
            args["seed"] = _kw_value(ctx, call, "seed", "int", 0, min=0)
    except Problem as p:
        ctx.diags.append(p.diag)
        return None
    return P.StepPlan(op=name, args=args, loc=loc(stage.span, ctx.root))


def _model_ref(ctx: RecipeContext, node: ast.Str) -> str | None:
    """An augmentation model (via/model/back): a local folder becomes project-relative, else a hub id."""
    local = Path(node.span.file).parent / node.value
    if node.value.startswith((".", "/")) or is_dir(local):
        return local_path(ctx, node, "model path", expect="dir")
    return node.value


def bind_datasets(ctx: RecipeContext) -> None:
    names_ok = set(ctx.data_nodes) | set(ctx.dataset_nodes)
    for name, decl in ctx.dataset_nodes.items():
        first = decl.stages[0]
        if not isinstance(first, ast.Ident) or (first.name not in names_ok) or first.name == name:
            nm = getattr(first, "name", "?")
            if isinstance(first, ast.Ident) and first.name == name:
                ctx.err("FT214", f"dataset `{name}` is defined from itself", first.span,
                        "start the pipeline from a data source")
                continue
            guess = did_you_mean(nm, names_ok - {name})
            ctx.err("FT201", f"undefined data source or dataset `{nm}`", first.span,
                    f"did you mean `{guess}`?" if guess else "declare it with `data NAME = jsonl(...)`")
            continue
        steps = [_step(ctx, st, names_ok) for st in decl.stages[1:]]
        if any(s is None for s in steps):
            continue
        ctx.pipelines[name] = P.PipelinePlan(name=name, source=first.name, steps=steps, loc=loc(decl.span, ctx.root))
    # cycles through dataset → dataset references
    for name in list(ctx.pipelines):
        seen, cur = {name}, ctx.pipelines[name].source
        while cur in ctx.pipelines:
            if cur in seen:
                ctx.err("FT214", f"dataset `{name}` depends on itself through `{cur}`", ctx.dataset_nodes[name].span,
                        "break the cycle: a pipeline must start from a data source")
                break
            seen.add(cur)
            cur = ctx.pipelines[cur].source


