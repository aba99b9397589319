"""Data sources (`data NAME = jsonl(...) {...}`) and dataset pipelines (`dataset NAME = a | step(...)`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ftlang import plan as P
from ftlang.diagnostics import Diagnostic
from ftlang.semantic.context import (
    DATA_SOURCES,
    MODEL_SOURCES,
    Scope,
    build_model,
    call_problems,
    loc,
    local_path,
    str_arg,
)
from ftlang.semantic.exprs import GATE_NAMES, to_expr  # noqa: F401 - re-exported (gates bind through here)
from ftlang.semantic.resolve import Program
from ftlang.semantic.schema import block
from ftlang.semantic.steps import bind_step
from ftlang.semantic.values import check_block, did_you_mean
from ftlang.syntax import ast

# ---------------------------------------------------------------------------- data


def bind_data(decl: ast.DataDecl, program: Program) -> tuple[P.SourcePlan | None, list[Diagnostic]]:
    """`data NAME = source(...) { ... }` → its plan part (None when it has errors)."""
    s = Scope(program)
    return _source_plan(decl, s), s.diags


def _source_plan(decl: ast.DataDecl, ctx: Scope) -> P.SourcePlan | None:
    src = decl.source
    if isinstance(src, ast.Call) and src.name in MODEL_SOURCES:
        ctx.err("FT208", f"`{src.name}(...)` is a model source where a data source is expected", src.name_span,
                "data comes from jsonl(...), json(...), csv(...), parquet(...), chat_jsonl(...) or hf_dataset(...); "
                "a model goes in `model = ...`")
        return None
    if not isinstance(src, ast.Call) or src.name not in DATA_SOURCES:
        name = src.name if isinstance(src, (ast.Call, ast.Ident)) else "?"
        guess = did_you_mean(name, DATA_SOURCES)
        ctx.err("FT108", f"unknown data source `{name}`", src.name_span if isinstance(src, ast.Call) else src.span,
                f"did you mean `{guess}(...)`?" if guess else f"data sources: {', '.join(DATA_SOURCES)}")
        return None
    problems = call_problems(src)
    if problems:
        ctx.diags.extend(problems)
        return None
    diags = ctx.diags
    tb = check_block(decl.body or (), block("data"), decl.span, ctx.params, diags)
    kw: dict[str, Any] = {"name": decl.name, "kind": src.name, "loc": loc(decl.span, ctx.root)}
    if src.name == "hf_dataset":
        hf = str_arg(src, 0, "name", ctx.params)
        if hf is None:
            ctx.err("FT111", "hf_dataset(...) needs the dataset id as a string", src.span,
                    'hf_dataset("org/name", split = "train")')
            return None
        kw.update(hf_name=hf.value, hf_split=_opt(src, "split"), hf_revision=_opt(src, "revision"),
                  hf_config=_opt(src, "config"))
        streaming = src.kwarg("streaming")
        if streaming is not None:
            if not isinstance(streaming.value, ast.Bool):
                ctx.err("FT111", "hf_dataset(..., streaming = ...) takes true or false", streaming.value.span,
                        'hf_dataset("org/name", split = "train", streaming = true)')
                return
            kw["hf_streaming"] = streaming.value.value
    else:
        p = str_arg(src, 0, "path", ctx.params)
        if p is None:
            ctx.err("FT111", f"{src.name}(...) needs a file path as a string", src.span,
                    f'{src.name}("data/file.{src.name.replace("chat_", "")}")')
            return None
        relp = local_path(ctx, p, "data path")
        if relp is None:
            return None
        kw["path"] = relp
    kw.update(tb.plan_kwargs())
    kw.setdefault("format", "chat" if src.name == "chat_jsonl" else "instruction")
    fields_tb = tb.blocks.get("fields")
    if fields_tb is not None:
        kw["fields"] = {k: f.value for k, f in fields_tb.values.items()}
    if tb.has("on_error"):
        oe = _on_error(ctx, tb.values["on_error"].node)
        if oe is None:
            return None
        kw["on_error"] = oe
    return build_model(ctx, P.SourcePlan, kw, decl.span)


def _opt(call: ast.Call, name: str) -> str | None:
    kw = call.kwarg(name)
    if kw is None:
        return None
    if isinstance(kw.value, ast.Str):
        return kw.value.value
    if isinstance(kw.value, ast.Ident):
        return kw.value.name
    return None


def _on_error(ctx: Scope, node: ast.Value) -> P.OnError | None:
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


def bind_datasets(datasets: Mapping[str, ast.DatasetDecl], sources: frozenset[str], program: Program
                  ) -> tuple[dict[str, P.PipelinePlan], list[Diagnostic]]:
    """Every `dataset NAME = a | step(...)` → its pipeline (left out when it has errors); `sources`: the
    declared data source names."""
    s = Scope(program)
    pipelines: dict[str, P.PipelinePlan] = {}
    names_ok = sources | frozenset(datasets)
    for name, decl in datasets.items():
        first = decl.stages[0]
        if not isinstance(first, ast.Ident) or (first.name not in names_ok) or first.name == name:
            nm = getattr(first, "name", "?")
            if isinstance(first, ast.Ident) and first.name == name:
                s.err("FT214", f"dataset `{name}` is defined from itself", first.span,
                      "start the pipeline from a data source")
                continue
            guess = did_you_mean(nm, names_ok - {name})
            s.err("FT201", f"undefined data source or dataset `{nm}`", first.span,
                  f"did you mean `{guess}`?" if guess else "declare it with `data NAME = jsonl(...)`")
            continue
        steps = []
        for stage in decl.stages[1:]:
            step, d = bind_step(stage, s.params, names_ok, s.root)
            s.diags += d
            steps.append(step)
        if any(step is None for step in steps):
            continue
        pipelines[name] = P.PipelinePlan(name=name, source=first.name, steps=steps, loc=loc(decl.span, s.root))
    # cycles through dataset → dataset references
    for name in list(pipelines):
        seen, cur = {name}, pipelines[name].source
        while cur in pipelines:
            if cur in seen:
                s.err("FT214", f"dataset `{name}` depends on itself through `{cur}`", datasets[name].span,
                      "break the cycle: a pipeline must start from a data source")
                break
            seen.add(cur)
            cur = pipelines[cur].source
    return pipelines, s.diags
