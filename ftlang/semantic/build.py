"""Bind a resolved recipe: type its blocks, resolve cards, sources, paths and pipelines, and build the Plan.

Binding is a set of functions, one per part of a recipe (model, data, datasets, split, method, train,
hardware, eval, export, task), each taking what it reads as arguments and returning (part, diagnostics).
`bind(program, bound)` calls them in dependency order and returns the frozen RecipeContext with every
diagnostic; rules (semantic/rules/) read that context; `assemble(ctx, diags)` seals the Plan once no
error is left.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from pydantic import ValidationError

from ftlang import plan as P
from ftlang.diagnostics import Diagnostic, error, has_errors
from ftlang.expr import to_text
from ftlang.semantic.cards import Card
from ftlang.semantic.context import (  # noqa: F401 - re-exported: the binder's public names
    RECIPE_BLOCKS,
    RecipeContext,
    Scope,
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
from ftlang.semantic.values import Problem, TypedBlock, check_block, did_you_mean
from ftlang.source import Span
from ftlang.syntax import ast


class MethodPart(NamedTuple):
    kind: str | None  # None: no method block, or an unknown kind
    method: Any  # the plan Method; None when the block has errors
    block: TypedBlock | None


# ---------------------------------------------------------------------------- blocks
# Each binder is a function of its inputs (the block as written, the resolved program, and what it
# depends on: the card, the task, the declared names) and returns (part, diagnostics); `bind` wires them.


def bind_method(node: ast.Block, card: Card | None, program: Program) -> tuple[MethodPart, list[Diagnostic]]:
    s = Scope(program)
    kind = node.label.name if isinstance(node.label, ast.Ident) else None
    if kind not in METHOD_KINDS:
        word = kind or (node.label.value if isinstance(node.label, ast.Str) else "")
        guess = did_you_mean(word, METHOD_KINDS)
        s.err("FT104", f"unknown method `{word}`" if word else "a method block needs its kind",
              node.label.span if node.label else node.kind_span,
              f"did you mean `{guess}`?" if guess else f"methods: {', '.join(METHOD_KINDS)}")
        return MethodPart(None, None, None), s.diags
    tb = check_block(node.body, method_block(kind), node.span, s.params, s.diags, node.label)
    kw: dict[str, Any] = {"loc": loc(node.span, s.root), **tb.plan_kwargs(skip=("targets", "feedforward"))}
    default_targets = list(card.aliases.get("all_linear", card.modules)) if card else []
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
            if qtype not in ("nf4", "fp4"):
                return MethodPart(kind, None, tb), s.diags  # rule FT301 reports it
            kw["quant"] = P.QuantSpec(**q.plan_kwargs()) if q else P.QuantSpec()
    elif kind == "prompt":
        init = tb.values.get("init")
        if init is not None:
            n = init.node
            if isinstance(n, ast.Call) and n.name == "text" and len(n.args) == 1 and isinstance(n.args[0], ast.Str):
                kw["init_text"] = n.args[0].value
            elif not (isinstance(n, ast.Ident) and n.name == "random"):
                s.err("FT116", "`init` is `random` or text(\"...\")", n.span, 'e.g. init = text("Classify:")')
                return MethodPart(kind, None, tb), s.diags
    elif kind == "ia3":
        targets = card.expand(tb.get("targets")) if (card and tb.has("targets")) else default_targets
        kw["targets"] = targets
        if tb.has("feedforward"):
            kw["feedforward"] = card.expand(tb.get("feedforward")) if card else tb.get("feedforward")
        else:
            from ftlang.semantic.cards import FEEDFORWARD

            ff = card.feedforward if card else FEEDFORWARD
            kw["feedforward"] = [t for t in targets if t in ff]
    method = None if has_errors(s.diags) else build_model(s, METHOD_MODELS[kind], kw, node.span)
    return MethodPart(kind, method, tb), s.diags


def bind_train(node: ast.Block | None, span: Span, card: Card | None, program: Program
               ) -> tuple[tuple[P.TrainPlan | None, TypedBlock], list[Diagnostic]]:
    """`span`: where a problem of a recipe without a train block is reported (the recipe)."""
    s = Scope(program)
    span = node.span if node else span
    tb = check_block(node.body if node else (), block("train"), span, s.params, s.diags)
    kw: dict[str, Any] = {"loc": loc(node.span, s.root) if node else None, **tb.plan_kwargs()}
    if tb.has("max_steps") and not tb.has("epochs"):
        kw["epochs"] = None
    if tb.has("warmup"):
        how, v = tb.get("warmup")
        kw["warmup_ratio" if how == "ratio" else "warmup_steps"] = v
    kw["template"] = tb.get("template") if tb.has("template") else (card.template if card else None)
    es = tb.blocks.get("early_stop")
    if es is not None:
        kw["early_stop"] = P.EarlyStop(**es.plan_kwargs())
    return (build_model(s, P.TrainPlan, kw, span), tb), s.diags


def bind_hardware(node: ast.Block | None, program: Program
                  ) -> tuple[tuple[P.HardwarePlan, dict | None, TypedBlock | None], list[Diagnostic]]:
    """(the plan part, the catalog entry of the declared GPU, the typed block)."""
    if node is None:
        return (P.HardwarePlan(), None, None), []
    s = Scope(program)
    gpu = None
    tb = check_block(node.body, block("hardware"), node.span, s.params, s.diags)
    kw: dict[str, Any] = {"loc": loc(node.span, s.root), **tb.plan_kwargs(skip=("gpu",))}
    if tb.has("gpu"):
        name = tb.get("gpu")
        catalog = hardware_catalog()
        info = catalog.get(name) or next((v for k, v in catalog.items() if k.lower() == str(name).lower()), None)
        if info is None:
            guess = did_you_mean(name, catalog)
            s.err("FT213", f"unknown GPU `{name}`", tb.span_of("gpu"),
                  f"did you mean `{guess}`?" if guess else
                  f"catalog: {', '.join(catalog)}; or give `memory = 24GiB` instead")
        else:
            gpu = info
            kw["gpu"] = next(k for k, v in catalog.items() if v is info)
            kw.setdefault("memory_bytes", int(info["memory_bytes"]))  # `memory = ...` overrides the catalog
            if info.get("price_per_hour") is not None:  # `price_per_hour = ...` overrides the catalog
                kw.setdefault("price_per_hour", float(info["price_per_hour"]))
    if not tb.has("strategy") and tb.get("count") * tb.get("nodes") > 1:
        kw["strategy"] = "ddp"  # several devices and no strategy: what torchrun does by default
    return (build_model(s, P.HardwarePlan, kw, node.span) or P.HardwarePlan(), gpu, tb), s.diags


def _select(s: Scope, node: ast.Value) -> str:
    """`select = final` or `select = best(val_loss)` (the metric evaluated during training)."""
    if isinstance(node, ast.Ident) and node.name == "final":
        return "final"
    if (isinstance(node, ast.Call) and node.name == "best" and not node.kwargs and len(node.args) == 1
            and isinstance(node.args[0], ast.Ident) and node.args[0].name in ("val_loss", "loss")):
        return "best(val_loss)"
    s.err("FT102", "`select` expects final or best(val_loss)", node.span,
          "best(...) reads val_loss, the one metric evaluated at each checkpoint during training")
    return "final"


def bind_eval(node: ast.Block | None, span: Span, task: P.TaskSpec, names: frozenset[str], program: Program
              ) -> tuple[tuple[P.EvalPlan | None, TypedBlock, tuple[ast.Gate, ...]], list[Diagnostic]]:
    """`names`: the data sources and datasets `forgetting on NAME` may name."""
    s = Scope(program)
    span = node.span if node else span
    tb = check_block(node.body if node else (), block("eval"), span, s.params, s.diags)
    kw: dict[str, Any] = {"loc": loc(node.span, s.root) if node else None, **tb.plan_kwargs()}
    if not tb.has("metrics") and task.kind == "classify":
        kw["metrics"] = ["loss", "accuracy", "f1"]  # perplexity means nothing for a classifier
    gen = tb.blocks.get("generation")
    if gen is not None:
        kw["generation"] = P.GenerationSpec(**gen.plan_kwargs())
    if tb.has("select"):
        kw["select"] = _select(s, tb.get("select"))
    gates, gate_nodes = [], []
    for st in tb.statements:
        if isinstance(st, ast.Gate):
            gate_nodes.append(st)
            try:
                expr = to_expr(s, st.expr, None)
            except Problem as p:
                s.diags.append(p.diag)
                continue
            gates.append(P.GatePlan(expr=expr, text=to_text(expr), loc=loc(st.span, s.root)))
        elif isinstance(st, ast.Forgetting):
            target = st.target.name
            if target not in names:
                guess = did_you_mean(target, names)
                s.err("FT201", f"undefined data source or dataset `{target}`", st.target.span,
                      f"did you mean `{guess}`?" if guess else "forgetting on NAME needs a declared data source")
            kw["forgetting_on"] = target
    kw["gates"] = gates
    return (build_model(s, P.EvalPlan, kw, span), tb, tuple(gate_nodes)), s.diags


def bind_export(node: ast.Block | None, program: Program
                ) -> tuple[tuple[P.ExportPlan | None, TypedBlock | None], list[Diagnostic]]:
    if node is None:
        return (P.ExportPlan(), None), []
    s = Scope(program)
    tb = check_block(node.body, block("export"), node.span, s.params, s.diags)
    kw: dict[str, Any] = {"loc": loc(node.span, s.root), **tb.plan_kwargs()}
    reg = tb.blocks.get("register")
    if reg is not None:
        if not isinstance(reg.label, ast.Str) and not isinstance(reg.label, ast.Ident):
            s.err("FT105", "register needs the model's name", reg.span, 'register "my-model" { registry = "registry/" }')
        else:
            name = reg.label.value if isinstance(reg.label, ast.Str) else reg.label.name
            rnode = reg.values.get("registry")
            if rnode is not None and isinstance(rnode.node, ast.Str):
                d = local_path(s, rnode.node, "registry directory", must_exist=False, expect="dir")
            else:
                d = rel(Path(reg.span.file).parent / "registry", s.root)
            if d is not None:
                kw["registry"] = P.RegistrySpec(name=name, dir=d, loc=loc(reg.span, s.root),
                                                **reg.plan_kwargs(skip=("registry",)))
    return (build_model(s, P.ExportPlan, kw, node.span), tb), s.diags


def bind_split(node: ast.Block, datasets: frozenset[str], sources: frozenset[str], program: Program
               ) -> tuple[tuple[P.SplitPlan | None, TypedBlock], list[Diagnostic]]:
    s = Scope(program)
    tb = check_block(node.body, block("split"), node.span, s.params, s.diags, node.label)
    target = node.label.name if isinstance(node.label, ast.Ident) else "train"
    if target == "train" and target not in datasets:
        return (None, tb), s.diags  # FT215 (no train dataset) says it once
    if target not in datasets and target not in sources:
        guess = did_you_mean(target, datasets)
        s.err("FT201", f"split of undefined dataset `{target}`", node.label.span if node.label else node.kind_span,
              f"did you mean `{guess}`?" if guess else "declare it with `dataset train = ...`")
        return (None, tb), s.diags
    split = None
    # written, not only accepted: a key with a bad value is reported there, not again as missing
    given = {st.key for st in node.body if isinstance(st, ast.Assign)} & {"validation", "first"}
    if len(given) != 1:
        s.err("FT105", "a `split` block needs `validation` (a fraction) or `first` (a row count)" if not given else
              "a `split` block takes `validation` or `first`, not both", node.span,
              "hold out a fraction with `validation = 5%`, or the first rows with `first = 1000`")
    elif tb.has(next(iter(given))):
        split = build_model(s, P.SplitPlan, {"dataset": target, "loc": loc(node.span, s.root), **tb.plan_kwargs()},
                            node.span)
    return (split, tb), s.diags


def bind_task(node: ast.Value) -> tuple[P.TaskSpec, list[Diagnostic]]:
    if isinstance(node, ast.Ident) and node.name in ("causal_lm", "classify"):
        return P.TaskSpec(kind=node.name), []
    if isinstance(node, ast.Call) and node.name == "classify":
        problems = call_problems(node)
        if problems:
            return P.TaskSpec(kind="classify"), problems
        labels = node.kwarg("labels")
        val = labels.value if labels else (node.args[0] if node.args else None)
        if isinstance(val, ast.ListValue) and all(isinstance(i, (ast.Ident, ast.Str)) for i in val.items) \
                and len(val.items) >= 2:
            names = [i.name if isinstance(i, ast.Ident) else i.value for i in val.items]
            if len(set(names)) != len(names):
                return P.TaskSpec(kind="classify"), [error("FT202", "a label is listed twice", val.span,
                                                           "list each label once")]
            return P.TaskSpec(kind="classify", labels=names), []
        # still a classifier: no follow-on task mismatch errors
        return P.TaskSpec(kind="classify"), [error("FT115", "classify(...) needs labels = [a, b, ...] (at least two)",
                                                   node.span, "e.g. task = classify(labels = [billing, bug, other])")]
    return P.TaskSpec(), [error("FT104", "`task` is causal_lm or classify(labels = [...])", node.span,
                                "e.g. task = classify(labels = [positive, negative])")]


# ---------------------------------------------------------------------------- the recipe


def _declarations(bound: BoundRecipe) -> tuple[dict, dict, dict, list[ast.Stmt], list[Diagnostic]]:
    """The recipe's statements sorted by kind: data, datasets, blocks, and the top-level assignments."""
    data: dict[str, ast.DataDecl] = {}
    datasets: dict[str, ast.DatasetDecl] = {}
    blocks: dict[str, ast.Block] = {}
    assigns: list[ast.Stmt] = []
    diags: list[Diagnostic] = []
    for st in bound.body:
        if isinstance(st, ast.DataDecl):
            if st.name in data:
                diags.append(error("FT202", f"data source `{st.name}` is defined twice", st.name_span,
                                   "rename one of them"))
            else:
                data[st.name] = st
        elif isinstance(st, ast.DatasetDecl):
            if st.name in datasets or st.name in data:
                diags.append(error("FT202", f"dataset `{st.name}` is defined twice", st.name_span,
                                   "rename one of them"))
            else:
                datasets[st.name] = st
        elif isinstance(st, ast.Block) and st.kind in RECIPE_BLOCKS:
            if st.kind in blocks:
                diags.append(error("FT107", f"a recipe has one `{st.kind}` block", st.kind_span,
                                   "merge the two blocks"))
            else:
                blocks[st.kind] = st
        else:
            assigns.append(st)
    return data, datasets, blocks, assigns, diags


def bind(program: Program, bound: BoundRecipe) -> tuple[RecipeContext, list[Diagnostic]]:
    """The recipe bound (frozen: what rules read and `assemble` seals) and the binding's diagnostics."""
    data_nodes, dataset_nodes, block_nodes, assigns, diags = _declarations(bound)
    top = check_block(tuple(assigns), block("recipe"), bound.node.span, program.param_values, diags)
    trust = bool(top.get("trust_remote_code"))
    task = P.TaskSpec()
    if top.has("task"):
        task, d = bind_task(top.values["task"].node)
        diags += d
    card = model_span = None
    model = top.values.get("model")
    if model is None:
        diags.append(error("FT105", f"recipe `{bound.name}` needs `model = ...`", bound.node.name_span,
                           'add model = llama2_7b (a card), hf("org/name"), local("dir") or gguf("file.gguf")'))
    else:
        model_span = model.node.span
        card, d = bind_model(model.node, trust, program)
        diags += d
    data: dict[str, P.SourcePlan] = {}
    for name, decl in data_nodes.items():
        source, d = bind_data(decl, program)
        diags += d
        if source is not None:
            data[name] = source
    pipelines, d = bind_datasets(dataset_nodes, frozenset(data_nodes), program)
    diags += d
    blocks: dict[str, TypedBlock] = {}
    split = None
    if "split" in block_nodes:
        (split, blocks["split"]), d = bind_split(block_nodes["split"], frozenset(dataset_nodes),
                                                 frozenset(data_nodes), program)
        diags += d
    method = MethodPart(None, None, None)
    if "method" in block_nodes:
        method, d = bind_method(block_nodes["method"], card, program)
        diags += d
    else:
        diags.append(error("FT105", f"recipe `{bound.name}` needs a method block", bound.node.name_span,
                           "add e.g. method lora { r = 16, alpha = 32, targets = attention }"))
    (train, blocks["train"]), d = bind_train(block_nodes.get("train"), bound.node.span, card, program)
    diags += d
    (hardware, gpu, hw_block), d = bind_hardware(block_nodes.get("hardware"), program)
    diags += d
    (eval_, blocks["eval"], gate_nodes), d = bind_eval(block_nodes.get("eval"), bound.node.span, task,
                                                       frozenset(data_nodes) | frozenset(dataset_nodes), program)
    diags += d
    (export, export_block), d = bind_export(block_nodes.get("export"), program)
    diags += d
    for kind, tb in (("method", method.block), ("hardware", hw_block), ("export", export_block)):
        if tb is not None:
            blocks[kind] = tb
    ctx = RecipeContext(
        program=program, bound=bound, top=top, blocks=MappingProxyType(blocks),
        block_nodes=MappingProxyType(block_nodes), card=card, model_span=model_span, task=task,
        trust_remote_code=trust, data=MappingProxyType(data), data_nodes=MappingProxyType(data_nodes),
        pipelines=MappingProxyType(pipelines), dataset_nodes=MappingProxyType(dataset_nodes), split=split,
        method_kind=method.kind, method=method.method, train=train, hardware=hardware, gpu=gpu, eval=eval_,
        gate_nodes=gate_nodes, export=export)
    return ctx, diags


def model_plan(ctx: RecipeContext) -> P.ModelPlan:
    c = ctx.card
    return P.ModelPlan(card=c.name, source=c.source, arch=c.arch, family=c.family, hidden=c.hidden, layers=c.layers,
                       heads=c.heads, kv_heads=c.kv_heads, intermediate=c.intermediate, vocab=c.vocab,
                       max_position=c.max_position, head_dim=c.head_dim, qkv_bias=c.qkv_bias,
                       tie_embeddings=c.tie_embeddings, modules=list(c.modules),
                       aliases={k: list(v) for k, v in c.aliases.items()}, template=c.template, task=ctx.task,
                       linears=[tuple(x) for x in c.linears] or None, params=c.params,
                       loc=loc(ctx.model_span, ctx.root))


def recipe_info(ctx: RecipeContext) -> P.RecipeInfo:
    values = {}
    for name, node in ctx.params.items():
        if isinstance(node, (ast.Bool, ast.Int, ast.Float, ast.Str, ast.Percent, ast.Size)):
            values[name] = node.value
    return P.RecipeInfo(name=ctx.name, file=rel(ctx.program.main, ctx.root), project_root=str(ctx.root.resolve()),
                        extends=ctx.bound.chain, params=values)


def assemble(ctx: RecipeContext, diags: list[Diagnostic]) -> tuple[P.Plan | None, list[Diagnostic]]:
    """The sealed plan (None while `diags`, the recipe's diagnostics, hold an error), and any new ones."""
    if has_errors(diags) or ctx.card is None or ctx.method is None or ctx.train is None or ctx.eval is None:
        return None, []
    from ftlang.semantic.resources import resources_plan
    from ftlang.semantic.rules.guidance import train_rows_hint

    try:
        # every part is a validated plan model already: constructing the Plan around them spares `check`
        # building the whole Plan's validator (a plan read back from JSON is validated in full)
        plan = P.Plan.model_construct(
            recipe=recipe_info(ctx), model=model_plan(ctx), data=dict(ctx.data),
            datasets=P.DatasetsPlan(pipelines=dict(ctx.pipelines), split=ctx.split), method=ctx.method,
            train=ctx.train, hardware=ctx.hardware, eval=ctx.eval, export=ctx.export or P.ExportPlan(),
            resources=resources_plan(ctx.card, ctx.method, ctx.train, ctx.hardware, ctx.task,
                                     rows=train_rows_hint(ctx)))
    except ValidationError as e:
        first = e.errors()[0]
        return None, [error("FT998", f"invalid plan: {'.'.join(str(x) for x in first.get('loc', ()))}: "
                            f"{first.get('msg')}", ctx.bound.node.name_span,
                            "this recipe passed the checks but not the plan schema; report it")]
    return plan.seal(), []
