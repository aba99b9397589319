"""Cross-reference rules: gates on computed metrics, the train dataset, validation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ftlang.diagnostics import Diagnostic, error
from ftlang.plan import CONVERTED
from ftlang.semantic.exprs import GATE_NAMES
from ftlang.semantic.paths import is_file
from ftlang.semantic.rules.registry import rule
from ftlang.semantic.values import did_you_mean
from ftlang.syntax import ast

if TYPE_CHECKING:
    from ftlang.semantic.context import RecipeContext

VERDICTS = ("overfitting", "forgetting")


def _idents(node: ast.Value) -> Iterator[ast.Ident]:
    if isinstance(node, ast.Ident):
        yield node
    elif isinstance(node, (ast.Compare, ast.BoolOp, ast.Arith)):
        yield from _idents(node.left)
        yield from _idents(node.right)
    elif isinstance(node, (ast.Not, ast.Neg)):
        yield from _idents(node.operand)
    elif isinstance(node, ast.Call):
        for a in node.args:
            yield from _idents(a)


def available_names(ctx: RecipeContext) -> list[str]:
    metrics = list(ctx.eval.metrics) if ctx.eval else ["loss", "perplexity"]
    out = [*dict.fromkeys(["loss", *metrics]), "overfitting"]
    if ctx.eval is not None and ctx.eval.forgetting_on:
        out.append("forgetting")
    return out


@rule("FT210")
def gate_metrics(ctx: RecipeContext) -> Iterator[Diagnostic]:
    names = available_names(ctx)
    for gate in ctx.gate_nodes:
        for ident in _idents(gate.expr):
            if ident.name in names or (ident.name in ctx.params and ident.name not in GATE_NAMES):
                continue
            if ident.name == "forgetting":
                yield error("FT210", "gate on `forgetting` without `forgetting on NAME`", ident.span,
                            "add `forgetting on <data source>` to the eval block")
                continue
            guess = did_you_mean(ident.name, names)
            computed = ", ".join(n for n in names if n not in VERDICTS)
            yield error("FT210", f"gate on `{ident.name}`, a metric that is not computed", ident.span,
                        f"did you mean `{guess}`?" if guess else
                        f"add {ident.name} to eval {{ metrics = [...] }} (computed now: {computed})")


@rule("FT215")
def train_dataset(ctx: RecipeContext) -> Iterator[Diagnostic]:
    if "train" not in ctx.dataset_nodes and ctx.data_nodes:
        yield error("FT215", f"recipe `{ctx.name}` has no `dataset train`", ctx.bound.node.name_span,
                    f"add `dataset train = {next(iter(ctx.data_nodes))}`")
    elif not ctx.data_nodes and not ctx.dataset_nodes:
        yield error("FT215", f"recipe `{ctx.name}` has no data", ctx.bound.node.name_span,
                    'add `data d = jsonl("data/train.jsonl")` and `dataset train = d`')


@rule("FT216")
def validation_once(ctx: RecipeContext) -> Iterator[Diagnostic]:
    if "validation" in ctx.dataset_nodes and "split" in ctx.block_nodes:
        yield error("FT216", "a recipe has a `validation` dataset or a `split`, not both",
                    ctx.block_nodes["split"].kind_span, "remove the split, or the validation dataset")


@rule("FT217")
def early_stop_metric(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("train")
    es = tb.blocks.get("early_stop") if tb else None
    if es is None:
        return
    if "split" not in ctx.block_nodes and "validation" not in ctx.dataset_nodes:
        yield error("FT217", "early stopping needs a validation set", ctx.blocks["train"].blocks["early_stop"].span,
                    "add split train { validation = 5% } or a dataset validation = ...")
        return
    metric = es.get("metric")
    ok = ["val_loss", *(n for n in available_names(ctx) if n not in VERDICTS)]
    if metric not in ok:
        guess = did_you_mean(metric, ok)
        yield error("FT217", f"early stopping on `{metric}`, which is not computed", es.span_of("metric"),
                    f"did you mean `{guess}`?" if guess else f"use one of: {', '.join(ok)}")


#: metrics each task computes (ftlang/backend/metrics.py computes these sets)
TASK_METRICS = {
    "causal_lm": ("loss", "perplexity", "bleu", "rouge_1", "rouge_2", "rouge_l", "exact_match"),
    "classify": ("loss", "accuracy", "f1"),
}


@rule("FT218")
def metrics_for_task(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("eval")
    if tb is None or not tb.has("metrics"):
        return
    allowed = TASK_METRICS[ctx.task.kind]
    node = tb.values["metrics"].node
    items = node.items if isinstance(node, ast.ListValue) else (node,)
    for it in items:
        name = getattr(it, "name", None) or getattr(it, "value", None)
        if isinstance(name, str) and name not in allowed:
            yield error("FT218", f"`{name}` is not computed for a {ctx.task.kind} task", it.span,
                        f"{ctx.task.kind} metrics: {', '.join(allowed)}")


@rule("FT219")
def format_for_task(ctx: RecipeContext) -> Iterator[Diagnostic]:
    classify = ctx.task.kind == "classify"
    for name, src in ctx.data.items():
        used = any(p.source == name for p in ctx.pipelines.values())
        if not used or (src.format == "classification") == classify:
            continue
        decl = ctx.data_nodes[name]
        if classify:
            yield error("FT219", f"data `{name}` has format {src.format}, but the task is classify", decl.name_span,
                        "set format = classification, fields { text = \"...\", label = \"...\" }")
        else:
            yield error("FT219", f"data `{name}` has format classification, but the task is causal_lm",
                        decl.name_span, "add task = classify(labels = [...]) to the recipe, or use another format")


@rule("FT220")
def template_exists(ctx: RecipeContext) -> Iterator[Diagnostic]:
    from ftlang.resources import stdlib_dir

    name = ctx.train.template if ctx.train is not None else None
    if not name:
        return
    folder = stdlib_dir() / "templates"
    if is_file(folder / f"{name}.jinja"):
        return
    known = sorted(p.stem for p in folder.glob("*.jinja"))
    tb = ctx.blocks.get("train")
    explicit = tb is not None and tb.has("template")
    span = tb.span_of("template") if explicit else (ctx.model_span or ctx.bound.node.name_span)
    guess = did_you_mean(name, known)
    yield error("FT220", f"no chat template `{name}` in the stdlib" + ("" if explicit else " (named by the model card)"),
                span, f"did you mean `{guess}`?" if guess else f"templates: {', '.join(known)}; or leave it out "
                "to use the tokenizer's own")


def dataset_format(ctx: RecipeContext, name: str, seen: tuple[str, ...] = ()) -> str | None:
    """The row format a source or dataset gives (its source's, through the steps' conversions)."""
    if name in ctx.data:
        return ctx.data[name].format
    pipe = ctx.pipelines.get(name)
    if pipe is None or name in seen:
        return None
    fmt = dataset_format(ctx, pipe.source, seen + (name,))
    for step in pipe.steps:
        fmt = CONVERTED.get(step.op, fmt)
    return fmt


def _has_chat_template(folder) -> bool | None:
    """Whether a local model folder's tokenizer has a chat template; None when it cannot tell."""
    import json

    from ftlang.semantic.tokenizer_files import chat_template

    try:
        cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return bool(chat_template(folder, cfg)) if isinstance(cfg, dict) else None


@rule("FT224")
def tokenizer_template(ctx: RecipeContext) -> Iterator[Diagnostic]:
    card = ctx.card
    if ctx.task.kind == "classify" or ctx.train is None or ctx.train.template or card is None:
        return
    if card.source.kind != "local" or card.source.package is not None:
        return
    chat = [(n, f) for n in ctx.pipelines if (f := dataset_format(ctx, n)) in ("chat", "instruction")]
    if not chat or _has_chat_template(ctx.program.root / card.source.path) is not False:
        return
    name, fmt = chat[0]
    yield error("FT224", f"dataset `{name}` has {fmt} rows to render, but the tokenizer in `{card.source.path}` "
                         "has no chat template", ctx.model_span or ctx.bound.node.name_span,
                'name one: train { template = "chatml" } (or llama2, llama3, alpaca, mistral), or train on '
                "completion rows (to_completion(...))")


BOUNDED = ("bleu", "rouge_1", "rouge_2", "rouge_l", "exact_match", "accuracy", "f1")


def _compares(node: ast.Value) -> Iterator[ast.Compare]:
    if isinstance(node, ast.Compare):
        yield node
    elif isinstance(node, ast.BoolOp):
        yield from _compares(node.left)
        yield from _compares(node.right)
    elif isinstance(node, ast.Not):
        yield from _compares(node.operand)


@rule("FT409")
def gate_range(ctx: RecipeContext) -> Iterator[Diagnostic]:
    from ftlang.diagnostics import warning

    for gate in ctx.gate_nodes:
        for cmp in _compares(gate.expr):
            pairs = ((cmp.left, cmp.right), (cmp.right, cmp.left))
            for metric, const in pairs:
                if isinstance(metric, ast.Ident) and metric.name in BOUNDED and isinstance(const, (ast.Int, ast.Float)):
                    if not 0 <= const.value <= 1:
                        yield warning("FT409", f"{metric.name} is between 0 and 1; `{cmp.op} {const.value:g}` "
                                      f"is never informative", const.span,
                                      f"write a fraction: {const.value / 100:g} or {const.value:g}%"
                                      if 1 < const.value <= 100 else "use a threshold between 0 and 1")


@rule("FT307")
def classify_packing(ctx: RecipeContext) -> Iterator[Diagnostic]:
    for tb in (ctx.blocks.get("train"), ctx.blocks.get("eval")):  # eval { packing } packs the validation set
        if ctx.task.kind == "classify" and tb is not None and tb.get("packing"):
            yield error("FT307", "packing cannot be used with a classify task", tb.span_of("packing"),
                        "set packing = false")
