"""Bind a resolved recipe: type its blocks, resolve cards, sources, paths and pipelines, and build the Plan.

`bind(program, bound)` returns a RecipeContext holding typed blocks and the plan parts that could be
built; problems go to `ctx.diags` at the node that caused them. Rules (semantic/rules/) read the
context; `assemble(ctx)` seals the final Plan once no error is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftlang import plan as P
from ftlang.diagnostics import has_errors
from ftlang.expr import to_text
from ftlang.semantic.context import (  # noqa: F401 - re-exported: the binder's public names
    RECIPE_BLOCKS,
    RecipeContext,
    build_model,
    call_problems,
    hardware_catalog,
    loc,
    local_path,
    rel,
)
from ftlang.semantic.datasets import bind_data, bind_datasets  # noqa: F401
from ftlang.semantic.exprs import to_expr
from ftlang.semantic.models import bind_model, card_from_node  # noqa: F401
from ftlang.semantic.resolve import BoundRecipe, Program
from ftlang.semantic.schema import METHOD_KINDS, METHOD_MODELS, block, method_block
from ftlang.semantic.values import Problem, check_block, did_you_mean
from ftlang.syntax import ast

# ---------------------------------------------------------------------------- blocks


def bind_method(ctx: RecipeContext, node: ast.Block) -> None:
    kind = node.label.name if isinstance(node.label, ast.Ident) else None
    if kind not in METHOD_KINDS:
        word = kind or (node.label.value if isinstance(node.label, ast.Str) else "")
        guess = did_you_mean(word, METHOD_KINDS)
        ctx.err("FT104", f"unknown method `{word}`" if word else "a method block needs its kind",
                node.label.span if node.label else node.kind_span,
                f"did you mean `{guess}`?" if guess else f"methods: {', '.join(METHOD_KINDS)}")
        return
    ctx.method_kind = kind
    n0 = len(ctx.diags)
    tb = check_block(node.body, method_block(kind), node.span, ctx.params, ctx.diags, node.label)
    ctx.blocks["method"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root)}
    card = ctx.card
    default_targets = list(card.aliases.get("all_linear", card.modules)) if card else []
    kw.update(tb.plan_kwargs(skip=("targets", "feedforward")))
    if kind in ("lora", "qlora"):
        alpha = tb.get("alpha")
        if alpha is None:
            alpha = 2 * tb.get("r")  # the common choice, and what the FT402 guidance asks for
        kw["alpha"] = int(alpha) if float(alpha).is_integer() else alpha
        kw["targets"] = card.expand(tb.get("targets")) if (card and tb.has("targets")) else \
            (tb.get("targets") or default_targets)
        if kind == "qlora":
            q = tb.blocks.get("quant")
            qtype = q.get("type") if q else "nf4"
            if qtype in ("nf4", "fp4"):
                kw["quant"] = P.QuantSpec(**q.plan_kwargs()) if q else P.QuantSpec()
            else:
                return  # rule FT301 reports it
    elif kind == "prompt":
        init = tb.values.get("init")
        if init is not None:
            n = init.node
            if isinstance(n, ast.Call) and n.name == "text" and len(n.args) == 1 and isinstance(n.args[0], ast.Str):
                kw["init_text"] = n.args[0].value
            elif not (isinstance(n, ast.Ident) and n.name == "random"):
                ctx.err("FT116", "`init` is `random` or text(\"...\")", n.span, 'e.g. init = text("Classify:")')
                return
    elif kind == "ia3":
        targets = card.expand(tb.get("targets")) if (card and tb.has("targets")) else default_targets
        kw["targets"] = targets
        if tb.has("feedforward"):
            kw["feedforward"] = card.expand(tb.get("feedforward")) if card else tb.get("feedforward")
        else:
            from ftlang.semantic.cards import FEEDFORWARD

            kw["feedforward"] = [t for t in targets if t in FEEDFORWARD]
    if not has_errors(ctx.diags[n0:]):
        ctx.method = build_model(ctx, METHOD_MODELS[kind], kw, node.span)


def bind_train(ctx: RecipeContext, node: ast.Block | None) -> None:
    span = node.span if node else ctx.bound.node.span
    tb = check_block(node.body if node else (), block("train"), span, ctx.params, ctx.diags)
    ctx.blocks["train"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root) if node else None, **tb.plan_kwargs()}
    if tb.has("max_steps") and not tb.has("epochs"):
        kw["epochs"] = None
    if tb.has("warmup"):
        how, v = tb.get("warmup")
        kw["warmup_ratio" if how == "ratio" else "warmup_steps"] = v
    kw["template"] = tb.get("template") if tb.has("template") else (ctx.card.template if ctx.card else None)
    es = tb.blocks.get("early_stop")
    if es is not None:
        kw["early_stop"] = P.EarlyStop(**es.plan_kwargs())
    ctx.train = build_model(ctx, P.TrainPlan, kw, span)


def bind_hardware(ctx: RecipeContext, node: ast.Block | None) -> None:
    if node is None:
        return
    tb = check_block(node.body, block("hardware"), node.span, ctx.params, ctx.diags)
    ctx.blocks["hardware"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root), **tb.plan_kwargs(skip=("gpu",))}
    if tb.has("gpu"):
        name = tb.get("gpu")
        catalog = hardware_catalog()
        info = catalog.get(name) or next((v for k, v in catalog.items() if k.lower() == str(name).lower()), None)
        if info is None:
            guess = did_you_mean(name, catalog)
            ctx.err("FT213", f"unknown GPU `{name}`", tb.span_of("gpu"),
                    f"did you mean `{guess}`?" if guess else
                    f"catalog: {', '.join(catalog)}; or give `memory = 24GiB` instead")
        else:
            ctx.gpu = info
            kw["gpu"] = next(k for k, v in catalog.items() if v is info)
            kw.setdefault("memory_bytes", int(info["memory_bytes"]))  # `memory = ...` overrides the catalog
            if info.get("price_per_hour") is not None:  # `price_per_hour = ...` overrides the catalog
                kw.setdefault("price_per_hour", float(info["price_per_hour"]))
    if not tb.has("strategy") and tb.get("count") * tb.get("nodes") > 1:
        kw["strategy"] = "ddp"  # several devices and no strategy: what torchrun does by default
    ctx.hardware = build_model(ctx, P.HardwarePlan, kw, node.span) or P.HardwarePlan()


def bind_eval(ctx: RecipeContext, node: ast.Block | None) -> None:
    span = node.span if node else ctx.bound.node.span
    tb = check_block(node.body if node else (), block("eval"), span, ctx.params, ctx.diags)
    ctx.blocks["eval"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root) if node else None, **tb.plan_kwargs()}
    if not tb.has("metrics") and ctx.task.kind == "classify":
        kw["metrics"] = ["loss", "accuracy", "f1"]  # perplexity means nothing for a classifier
    gen = tb.blocks.get("generation")
    if gen is not None:
        kw["generation"] = P.GenerationSpec(**gen.plan_kwargs())
    gates = []
    for st in tb.statements:
        if isinstance(st, ast.Gate):
            ctx.gate_nodes.append(st)
            try:
                expr = to_expr(ctx, st.expr, None)
            except Problem as p:
                ctx.diags.append(p.diag)
                continue
            gates.append(P.GatePlan(expr=expr, text=to_text(expr), loc=loc(st.span, ctx.root)))
        elif isinstance(st, ast.Forgetting):
            target = st.target.name
            if target not in ctx.data_nodes and target not in ctx.dataset_nodes:
                guess = did_you_mean(target, set(ctx.data_nodes) | set(ctx.dataset_nodes))
                ctx.err("FT201", f"undefined data source or dataset `{target}`", st.target.span,
                        f"did you mean `{guess}`?" if guess else "forgetting on NAME needs a declared data source")
            kw["forgetting_on"] = target
    kw["gates"] = gates
    ctx.eval = build_model(ctx, P.EvalPlan, kw, span)


def bind_export(ctx: RecipeContext, node: ast.Block | None) -> None:
    if node is None:
        ctx.export = P.ExportPlan()
        return
    tb = check_block(node.body, block("export"), node.span, ctx.params, ctx.diags)
    ctx.blocks["export"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root), **tb.plan_kwargs()}
    reg = tb.blocks.get("register")
    if reg is not None:
        if not isinstance(reg.label, ast.Str) and not isinstance(reg.label, ast.Ident):
            ctx.err("FT105", "register needs the model's name", reg.span, 'register "my-model" { registry = "registry/" }')
        else:
            name = reg.label.value if isinstance(reg.label, ast.Str) else reg.label.name
            rnode = reg.values.get("registry")
            if rnode is not None and isinstance(rnode.node, ast.Str):
                d = local_path(ctx, rnode.node, "registry directory", must_exist=False, expect="dir")
            else:
                d = rel(Path(reg.span.file).parent / "registry", ctx.root)
            if d is not None:
                kw["registry"] = P.RegistrySpec(name=name, dir=d, loc=loc(reg.span, ctx.root),
                                                **reg.plan_kwargs(skip=("registry",)))
    ctx.export = build_model(ctx, P.ExportPlan, kw, node.span)


def bind_split(ctx: RecipeContext, node: ast.Block) -> None:
    tb = check_block(node.body, block("split"), node.span, ctx.params, ctx.diags, node.label)
    ctx.blocks["split"] = tb
    target = node.label.name if isinstance(node.label, ast.Ident) else "train"
    if target == "train" and target not in ctx.dataset_nodes:
        return  # FT215 (no train dataset) says it once
    if target not in ctx.dataset_nodes and target not in ctx.data_nodes:
        guess = did_you_mean(target, set(ctx.dataset_nodes))
        ctx.err("FT201", f"split of undefined dataset `{target}`", node.label.span if node.label else node.kind_span,
                f"did you mean `{guess}`?" if guess else "declare it with `dataset train = ...`")
        return
    if tb.has("validation"):
        ctx.split = build_model(ctx, P.SplitPlan, {"dataset": target, "loc": loc(node.span, ctx.root),
                                                   **tb.plan_kwargs()}, node.span)


def bind_task(ctx: RecipeContext, node: ast.Value) -> None:
    if isinstance(node, ast.Ident) and node.name in ("causal_lm", "classify"):
        ctx.task = P.TaskSpec(kind=node.name)
        return
    if isinstance(node, ast.Call) and node.name == "classify":
        problems = call_problems(node)
        if problems:
            ctx.diags.extend(problems)
            ctx.task = P.TaskSpec(kind="classify")
            return
        labels = node.kwarg("labels")
        val = labels.value if labels else (node.args[0] if node.args else None)
        if isinstance(val, ast.ListValue) and all(isinstance(i, (ast.Ident, ast.Str)) for i in val.items) \
                and len(val.items) >= 2:
            names = [i.name if isinstance(i, ast.Ident) else i.value for i in val.items]
            if len(set(names)) != len(names):
                ctx.err("FT202", "a label is listed twice", val.span, "list each label once")
                ctx.task = P.TaskSpec(kind="classify")
                return
            ctx.task = P.TaskSpec(kind="classify", labels=names)
            return
        ctx.err("FT115", "classify(...) needs labels = [a, b, ...] (at least two)", node.span,
                "e.g. task = classify(labels = [billing, bug, other])")
        ctx.task = P.TaskSpec(kind="classify")  # still a classifier: no follow-on task mismatch errors
        return
    ctx.err("FT104", "`task` is causal_lm or classify(labels = [...])", node.span,
            "e.g. task = classify(labels = [positive, negative])")


# ---------------------------------------------------------------------------- the recipe


def bind(program: Program, bound: BoundRecipe) -> RecipeContext:
    ctx = RecipeContext(program, bound)
    top_schema = block("recipe")
    assigns: list[ast.Stmt] = []
    for st in bound.body:
        if isinstance(st, ast.DataDecl):
            if st.name in ctx.data_nodes:
                ctx.err("FT202", f"data source `{st.name}` is defined twice", st.name_span, "rename one of them")
            else:
                ctx.data_nodes[st.name] = st
        elif isinstance(st, ast.DatasetDecl):
            if st.name in ctx.dataset_nodes or st.name in ctx.data_nodes:
                ctx.err("FT202", f"dataset `{st.name}` is defined twice", st.name_span, "rename one of them")
            else:
                ctx.dataset_nodes[st.name] = st
        elif isinstance(st, ast.Block) and st.kind in RECIPE_BLOCKS:
            if st.kind in ctx.block_nodes:
                ctx.err("FT107", f"a recipe has one `{st.kind}` block", st.kind_span, "merge the two blocks")
            else:
                ctx.block_nodes[st.kind] = st
        else:
            assigns.append(st)
    ctx.top = check_block(tuple(assigns), top_schema, bound.node.span, ctx.params, ctx.diags)
    ctx.trust_remote_code = bool(ctx.top.get("trust_remote_code"))
    if ctx.top.has("task"):
        bind_task(ctx, ctx.top.values["task"].node)
    model = ctx.top.values.get("model")
    if model is None:
        ctx.err("FT105", f"recipe `{bound.name}` needs `model = ...`", bound.node.name_span,
                'add model = llama2_7b (a card), hf("org/name"), local("dir") or gguf("file.gguf")')
    else:
        bind_model(ctx, model.node, model.key_span)
    for _name, decl in ctx.data_nodes.items():
        bind_data(ctx, decl)
    bind_datasets(ctx)
    if "split" in ctx.block_nodes:
        bind_split(ctx, ctx.block_nodes["split"])
    if "method" in ctx.block_nodes:
        bind_method(ctx, ctx.block_nodes["method"])
    else:
        ctx.err("FT105", f"recipe `{bound.name}` needs a method block", bound.node.name_span,
                "add e.g. method lora { r = 16, alpha = 32, targets = attention }")
    bind_train(ctx, ctx.block_nodes.get("train"))
    bind_hardware(ctx, ctx.block_nodes.get("hardware"))
    bind_eval(ctx, ctx.block_nodes.get("eval"))
    bind_export(ctx, ctx.block_nodes.get("export"))
    return ctx


def model_plan(ctx: RecipeContext) -> P.ModelPlan:
    c = ctx.card
    return P.ModelPlan(card=c.name, source=c.source, arch=c.arch, family=c.family, hidden=c.hidden, layers=c.layers,
                       heads=c.heads, kv_heads=c.kv_heads, intermediate=c.intermediate, vocab=c.vocab,
                       max_position=c.max_position, head_dim=c.head_dim, qkv_bias=c.qkv_bias,
                       tie_embeddings=c.tie_embeddings, modules=list(c.modules),
                       aliases={k: list(v) for k, v in c.aliases.items()}, template=c.template, task=ctx.task,
                       loc=loc(ctx.model_span, ctx.root))


def recipe_info(ctx: RecipeContext) -> P.RecipeInfo:
    values = {}
    for name, node in ctx.params.items():
        if isinstance(node, (ast.Bool, ast.Int, ast.Float, ast.Str, ast.Percent, ast.Size)):
            values[name] = node.value
    return P.RecipeInfo(name=ctx.name, file=rel(ctx.program.main, ctx.root), project_root=str(ctx.root.resolve()),
                        extends=ctx.bound.chain, params=values)


def assemble(ctx: RecipeContext) -> P.Plan | None:
    """The sealed plan, or None while the context holds errors."""
    if has_errors(ctx.diags) or ctx.card is None or ctx.method is None or ctx.train is None or ctx.eval is None:
        return None
    from ftlang.semantic.resources import resources_plan
    from ftlang.semantic.rules.guidance import train_rows_hint

    try:
        # every part is a validated plan model already: constructing the Plan around them spares `check`
        # building the whole Plan's validator (a plan read back from JSON is validated in full)
        plan = P.Plan.model_construct(
            recipe=recipe_info(ctx), model=model_plan(ctx), data=ctx.data,
            datasets=P.DatasetsPlan(pipelines=ctx.pipelines, split=ctx.split), method=ctx.method, train=ctx.train,
            hardware=ctx.hardware, eval=ctx.eval, export=ctx.export or P.ExportPlan(),
            resources=resources_plan(ctx.card, ctx.method, ctx.train, ctx.hardware, ctx.task,
                                     rows=train_rows_hint(ctx)))
    except ValidationError as e:
        first = e.errors()[0]
        ctx.err("FT998", f"invalid plan: {'.'.join(str(x) for x in first.get('loc', ()))}: {first.get('msg')}",
                ctx.bound.node.name_span, "this recipe passed the checks but not the plan schema; report it")
        return None
    ctx.plan = plan.seal()
    return ctx.plan

