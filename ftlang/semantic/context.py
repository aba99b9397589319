"""The bound recipe (RecipeContext, frozen), a binder's Scope, and the helpers every binder uses: plan locations,
project-relative paths, the hardware catalog."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftlang import plan as P
from ftlang.diagnostics import Diagnostic, error
from ftlang.resources import read_shipped, stdlib_dir
from ftlang.semantic.cards import Card
from ftlang.semantic.paths import Expect, checked_path
from ftlang.semantic.resolve import BoundRecipe, Program
from ftlang.semantic.values import Params, TypedBlock
from ftlang.source import Span
from ftlang.syntax import ast

DATA_SOURCES = ("jsonl", "json", "csv", "parquet", "chat_jsonl", "hf_dataset")
MODEL_SOURCES = ("hf", "local", "gguf", "local_package")
#: pipeline steps and augmentations, as the plan's step models declare them (the LSP completes these)
STEPS: tuple[str, ...] = tuple(P.STEP_MODELS)
AUGMENT_OPS = P.AUGMENT_OPS
RECIPE_BLOCKS = ("split", "method", "train", "hardware", "eval", "export", "sweep")  # sweep: semantic/sweep.py


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
    data = json.loads(read_shipped(stdlib_dir() / "hardware.json"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


class _ReadsProgram:
    program: Program

    @property
    def root(self) -> Path:
        return self.program.root

    @property
    def params(self) -> Params:
        return self.program.param_values


@dataclass
class Scope(_ReadsProgram):
    """What a binder reads (the resolved program: params, project root, cards) and the diagnostics it
    finds. Each binder makes its own and returns `scope.diags` with its part."""

    program: Program
    diags: list[Diagnostic] = field(default_factory=list)

    def err(self, *args, **kw) -> None:
        self.diags.append(error(*args, **kw))


@dataclass(frozen=True)
class RecipeContext(_ReadsProgram):
    """A bound recipe, frozen: the typed blocks and the plan parts binding could build. Rules read it;
    `build.assemble` seals it into a Plan. Made by `build.bind`, never changed after."""

    program: Program
    bound: BoundRecipe
    top: TypedBlock
    blocks: Mapping[str, TypedBlock]  # split, method, train, hardware, eval, export (those written)
    block_nodes: Mapping[str, ast.Block]
    card: Card | None
    model_span: Span | None
    task: P.TaskSpec
    trust_remote_code: bool
    data: Mapping[str, P.SourcePlan]  # the sources that bound without error
    data_nodes: Mapping[str, ast.DataDecl]
    pipelines: Mapping[str, P.PipelinePlan]
    dataset_nodes: Mapping[str, ast.DatasetDecl]
    split: P.SplitPlan | None
    method_kind: str | None
    method: Any  # a plan Method, None when the method block has errors
    train: P.TrainPlan | None
    hardware: P.HardwarePlan
    gpu: dict | None  # the hardware catalog's entry for `gpu = "..."`
    eval: P.EvalPlan | None
    gate_nodes: tuple[ast.Gate, ...]
    export: P.ExportPlan | None

    @property
    def name(self) -> str:
        return self.bound.name


# ---------------------------------------------------------------------------- paths


def local_path(ctx: Scope, node: ast.Str, what: str, must_exist: bool = True,
               expect: Expect = "file") -> str | None:
    """A path written in a recipe, resolved against that file's folder; None (and an error) when bad."""
    target, problem = checked_path(node.value, Path(node.span.file).parent, node.span, what, root=ctx.root,
                                   expect=expect, must_exist=must_exist)
    if problem is not None:
        ctx.diags.append(problem)
        return None
    return rel(target, ctx.root)


#: the keyword arguments each call takes, and how many positional arguments
CALL_SIGNATURES: dict[str, tuple[tuple[str, ...], int]] = {
    **{k: (("path",), 1) for k in ("jsonl", "json", "csv", "parquet", "chat_jsonl")},
    "hf_dataset": (("name", "split", "revision", "config", "streaming"), 1),
    "hf": (("id", "path", "revision", "trust_remote_code"), 1),
    "local": (("path", "trust_remote_code"), 1),
    "gguf": (("path", "package", "file"), 1),
    "local_package": (("package", "path"), 2),
    **{op: model.signature for op, model in P.STEP_MODELS.items()},  # declared on each step model
    "skip": (("max",), 1), "classify": (("labels",), 1), "text": ((), 1),
}


def call_problems(call: ast.Call) -> list[Diagnostic]:
    """Unknown keyword arguments or too many positional ones, for the calls in CALL_SIGNATURES."""
    sig = CALL_SIGNATURES.get(call.name)
    if sig is None:
        return []
    names, positional = sig
    out = []
    for kw in call.kwargs:
        if kw.name not in names:
            from ftlang.semantic.values import did_you_mean

            guess = did_you_mean(kw.name, names)
            takes = f"{call.name}(...) takes " + (", ".join(f"{n} = ..." for n in names) or "no keyword arguments")
            out.append(error("FT109", f"unknown argument `{kw.name}` to {call.name}(...)"
                             + (f": did you mean `{guess}`?" if guess else ""), kw.span,
                             f"replace `{kw.name}` with `{guess}`" if guess else takes))
    if len(call.args) > positional:
        extra = call.args[positional]
        out.append(error("FT109", f"{call.name}(...) takes {positional or 'no'} positional argument"
                         f"{'s' if positional != 1 else ''}", extra.span,
                         "name the argument: " + (", ".join(f"{n} = ..." for n in names) or "remove it")))
    return out


def str_arg(call: ast.Call, index: int, name: str, params: dict | None = None) -> ast.Str | None:
    """A string argument, by keyword or position; a name of a string param counts (at the use's span)."""
    kw = call.kwarg(name)
    node = kw.value if kw is not None else (call.args[index] if len(call.args) > index else None)
    if isinstance(node, ast.Ident) and params and isinstance(params.get(node.name), ast.Str):
        return ast.Str(node.span, params[node.name].value)
    return node if isinstance(node, ast.Str) else None



def build_model(ctx: Scope, model, kw: dict, span: Span):
    try:
        return model(**kw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        ctx.err("FT117", f"invalid value for `{where}`: {first.get('msg')}", span, "see `ftlang schema` for the plan")
        return None


