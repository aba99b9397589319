"""Hover: a key's schema entry, a card's dimensions, a param's value and uses, a method block's trainable
parameters and memory, a diagnostic code's explain text."""

from __future__ import annotations

import re
from pathlib import Path

from ftlang.lsp import names
from ftlang.lsp.cursor import cursor_at, word_at
from ftlang.lsp.locate import Chain, chain_at, enclosing, schema_name, walk
from ftlang.lsp.positions import contains
from ftlang.lsp.state import Analysis
from ftlang.semantic.schema import block
from ftlang.semantic.units import human_bytes, human_count
from ftlang.source import Span
from ftlang.syntax import ast

_CODE = re.compile(r"FT\d{3}\Z", re.IGNORECASE)


def hover(a: Analysis, offset: int) -> tuple[str, tuple[int, int]] | None:
    """(Markdown, (start, end) offsets) for what is under the cursor, or None."""
    start, end, word = word_at(a.text, offset)
    parts: list[str] = []
    rng = (start, end)
    if _CODE.match(word):
        parts.append(names.explain_markdown(word.upper()) or f"no explanation for {word}")
    elif a.module is not None:
        found = _node_hover(a, offset)
        if found is not None:
            parts.append(found[0])
            rng = (found[1].start, found[1].end)
    elif word:  # the text does not parse: the key under the cursor, from the raw text
        cur = cursor_at(a.text, start)
        if not cur.words and cur.block:
            md = key_markdown(cur.block, word)
            if md:
                parts.append(md)
    for code in dict.fromkeys(d.code for d in a.diagnostics
                              if d.span is not None and d.span.file == a.source.path and contains(d.span, offset)):
        if not _CODE.match(word) and (md := names.explain_markdown(code)):
            parts.append(md)
    return ("\n\n---\n\n".join(parts), rng) if parts else None


def key_markdown(block_name: str | None, key: str) -> str | None:
    schema = block(block_name) if block_name else None
    ks = schema.key(key) if schema is not None else None
    if ks is None:
        return None
    facts = [ks.type + (f" ({ks.unit})" if ks.unit else "")]
    if ks.required:
        facts.append("required")
    elif ks.default is not None:
        facts.append(f"default `{_literal(ks.default)}`")
    if ks.enum:
        facts.append("one of " + ", ".join(f"`{e}`" for e in ks.enum))
    elif ks.range_text():
        facts.append(f"range `{ks.range_text()}`")
    return f"**`{ks.name}`** in `{block_name}` · " + " · ".join(facts) + f"\n\n{ks.doc}"


def _literal(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list):
        return "[" + ", ".join(_literal(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _node_hover(a: Analysis, offset: int) -> tuple[str, Span] | None:
    chain = chain_at(a.module, offset)
    node = chain[-1]
    parent = chain[-2] if len(chain) > 1 else None
    recipe = enclosing(chain, ast.Recipe)
    rname = recipe.name if recipe is not None else None
    if isinstance(node, ast.Assign) and contains(node.key_span, offset):
        md = key_markdown(schema_name(chain), node.key)
        if md is None:
            return None
        return md + "".join(f"\n\n{ln}" for ln in _overrides(a, chain)), node.key_span
    if isinstance(parent, ast.Block) and node is parent.label:  # `method lora`: the label names the block
        chain, node, parent = chain[:-1], parent, chain[-3]
    if isinstance(node, ast.Block) and (contains(node.kind_span, offset) or
                                        (node.label is not None and contains(node.label.span, offset))):
        head = node.kind_span.merge(node.label.span) if node.label is not None else node.kind_span
        if node.kind == "method":
            return method_markdown(a, rname, schema_name(chain)), head
        schema = block(schema_name(chain) or "")
        return (f"**`{node.kind}`** block · {schema.doc}" if schema else f"`{node.kind}` block"), head
    gate = enclosing(chain, ast.Gate)
    if gate is not None and (node is gate or isinstance(node, ast.Ident)):
        return gate_markdown(a, rname, node.name if isinstance(node, ast.Ident) else None), node.span
    if isinstance(node, ast.Param) and contains(node.name_span, offset):
        return param_markdown(a, node.name), node.name_span
    if isinstance(node, ast.ModelCard) and contains(node.name_span, offset):
        card = names.card_of(node, a.program.param_values if a.program else {})
        return (names.card_markdown(card, node.name) if card else f"model card `{node.name}` (has errors)"), \
            node.name_span
    if isinstance(node, ast.Recipe) and contains(node.name_span, offset):
        return recipe_markdown(a, node.name), node.name_span
    if isinstance(node, (ast.DataDecl, ast.DatasetDecl)) and contains(node.name_span, offset):
        return decl_markdown(node), node.name_span
    if isinstance(node, ast.Str) and isinstance(parent, ast.Import):
        return import_markdown(a, parent), node.span
    if isinstance(node, ast.Call) and contains(node.name_span, offset):
        return call_markdown(node.name), node.name_span
    if isinstance(node, ast.Ident):
        md = ident_markdown(a, chain, rname)
        return (md, node.span) if md else None
    return None


def ident_markdown(a: Analysis, chain: Chain, recipe: str | None) -> str | None:
    node = chain[-1]
    program = a.program
    assign = enclosing(chain, ast.Assign)
    if isinstance(chain[-2], ast.Recipe):  # `extends NAME`
        return recipe_markdown(a, node.name)
    scope = names.data_names(a, recipe, "")
    if assign is not None and assign.key in ("targets", "feedforward"):
        ctx = names.context_for(a, recipe)
        card = ctx.card if ctx is not None else None
        if card is not None and node.name in card.aliases:
            return f"alias `{node.name}` of the model card: " + ", ".join(f"`{m}`" for m in card.aliases[node.name])
        if card is not None and node.name in card.modules:
            return f"module `{node.name}` of the model card"
    if program is not None and node.name in program.params:
        return param_markdown(a, node.name)
    if program is not None and node.name in program.cards:
        card = names.card_of(program.cards[node.name], program.param_values)
        return names.card_markdown(card, node.name) if card else None
    if node.name in scope and recipe is not None:
        ctx = names.context_for(a, recipe)
        decl = (ctx.data_nodes.get(node.name) or ctx.dataset_nodes.get(node.name)) if ctx else None
        return decl_markdown(decl) if decl else f"{scope[node.name]} `{node.name}`"
    if assign is not None:
        return key_markdown(schema_name(chain[:-1]), assign.key)
    return None


def gate_markdown(a: Analysis, recipe: str | None, name: str | None) -> str:
    """A gate line, or a name in it: what the gate may read in this recipe."""
    ctx = names.context_for(a, recipe)
    if ctx is not None and ctx.eval is not None:
        from ftlang.semantic.rules.references import available_names

        found = available_names(ctx)
    else:
        found = []
    head = f"**`{name}`** in a gate" if name else "**`gate EXPR`** · the run fails (exit 3) when EXPR is false"
    return head + ("\n\nnames a gate can read here: " + ", ".join(f"`{n}`" for n in found) if found else "")


def _where(span: Span | None, a: Analysis) -> str:
    if span is None:
        return "?"
    p = Path(span.file)
    if a.root is not None:
        try:
            p = Path(p).resolve().relative_to(a.root)
        except (ValueError, OSError):
            pass
    return f"{p.as_posix()}:{span.line}:{span.column}"


def param_markdown(a: Analysis, name: str) -> str:
    program = a.program
    node = program.params.get(name) if program is not None else None
    if node is None:
        return f"param `{name}`"
    value = program.param_values.get(name, node.value)
    uses = [(*up, n) for m in program.modules for n, up in walk(m)
            if isinstance(n, ast.Ident) and n.name == name and n.span != node.name_span]
    lines = [f"**param `{name}`** = `{names.value_text(value)}`", f"declared at {_where(node.name_span, a)}"]
    if uses:
        lines.append(f"used {len(uses)}×: " + ", ".join(_where(c[-1].span, a) for c in uses[:8]))
    # a recipe that extends a user of the param and sets the same key does not read the param
    lines += [ln for c in uses if isinstance(c[-2], ast.Assign) for ln in _overrides(a, c[:-1], parents=False, unless=name)]
    lines.append(f"override per run: `ftlang run FILE --set {name}=VALUE`")
    return "\n\n".join(lines)


def _key_path(chain: Chain) -> tuple | None:
    path = []
    for n in chain:
        if isinstance(n, ast.Block):
            path.append((n.kind, n.label.name if isinstance(n.label, ast.Ident) else
                         n.label.value if n.label is not None else None))
        elif isinstance(n, (ast.DataDecl, ast.DatasetDecl)):
            path.append(("data", n.name))
    last = chain[-1]
    return (*path, last.key) if isinstance(last, ast.Assign) else None


def _find_key(body: tuple[ast.Stmt, ...], path: tuple) -> ast.Assign | None:
    for st in body:
        if len(path) == 1 and isinstance(st, ast.Assign) and st.key == path[0]:
            return st
        if len(path) > 1:
            kind, label = path[0]
            if isinstance(st, ast.Block) and st.kind == kind and (
                    (st.label.name if isinstance(st.label, ast.Ident) else getattr(st.label, "value", None)) == label
                    or kind != "method"):
                return _find_key(st.body, path[1:])
            if isinstance(st, ast.DataDecl) and kind == "data" and st.name == label and st.body:
                return _find_key(st.body, path[1:])
    return None


def _overrides(a: Analysis, chain: Chain, parents: bool = True, unless: str | None = None) -> list[str]:
    """Where the same key is set up (parents) or down the `extends` chain (`unless` it is set to that name)."""
    recipe = enclosing(chain, ast.Recipe)
    program = a.program
    path = _key_path(chain)
    if recipe is None or program is None or path is None or recipe.name not in program.bound:
        return []
    lines = []
    for parent in program.bound[recipe.name].chain if parents else ():
        node = program.recipes.get(parent)
        hit = _find_key(node.body, path) if node is not None else None
        if hit is not None:
            lines.append(f"overrides `{parent}`: `{hit.key} = {names.value_text(hit.value)}` "
                         f"({_where(hit.span, a)})")
    for child, b in program.bound.items():
        if recipe.name in b.chain:
            hit = _find_key(b.node.body, path)
            if hit is not None and not (isinstance(hit.value, ast.Ident) and hit.value.name == unless):
                lines.append(f"overridden in `{child}`: `{hit.key} = {names.value_text(hit.value)}` "
                             f"({_where(hit.span, a)})")
    return lines


def method_markdown(a: Analysis, recipe: str | None, schema: str | None) -> str:
    head = f"**`{schema or 'method'}`**"
    sb = block(schema) if schema else None
    if sb is not None:
        head += f" · {sb.doc}"
    ctx = names.context_for(a, recipe)
    est = names.method_estimate(ctx)
    if est is None:
        return head + "\n\nno estimate while the recipe's model card, method or train block has errors"
    m = est.memory
    share = est.trainable / est.total if est.total else 0
    rows = [("weights", m.weights_bytes), ("gradients", m.gradients_bytes), ("optimizer", m.optimizer_bytes),
            ("activations", m.activations_bytes), ("logits", m.logits_bytes)]
    table = "| memory per device | |\n|---|---:|\n" + "".join(f"| {k} | {human_bytes(v)} |\n" for k, v in rows)
    table += f"| **peak** | **{human_bytes(m.peak_bytes)}** |\n"
    device = ctx.hardware.memory_bytes
    fit = ""
    if device:
        fit = (f"\n\nfits the {human_bytes(device)} of {ctx.hardware.gpu or 'the device'}"
               if m.peak_bytes <= device else f"\n\n**exceeds** the {human_bytes(device)} of "
               f"{ctx.hardware.gpu or 'the device'} (FT501)")
    return (f"{head}\n\n**{human_count(est.trainable)} trainable** of {human_count(est.total)} "
            f"({share:.2%}) · {est.trainable:,} parameters\n\n{table}{fit}")


def recipe_markdown(a: Analysis, name: str) -> str:
    program = a.program
    lines = [f"**recipe `{name}`**"]
    if program is not None and name in program.bound and program.bound[name].chain:
        lines.append("extends " + " → ".join(f"`{p}`" for p in program.bound[name].chain))
    node = program.recipes.get(name) if program is not None else None
    if node is not None:
        lines.append(f"defined at {_where(node.name_span, a)}")
    est = names.method_estimate(names.context_for(a, name))
    if est is not None:
        lines.append(f"≈ {human_count(est.trainable)} trainable · {human_bytes(est.memory.peak_bytes)} peak")
    return "\n\n".join(lines)


def decl_markdown(node: ast.DataDecl | ast.DatasetDecl) -> str:
    if isinstance(node, ast.DataDecl):
        return f"**data `{node.name}`** = `{names.value_text(node.source)}`"
    stages = " | ".join(names.value_text(s) for s in node.stages)
    return f"**dataset `{node.name}`** = `{stages}`"


def import_markdown(a: Analysis, node: ast.Import) -> str:
    from ftlang.semantic.resolve import import_target

    target, std = import_target(node.path.value, a.doc.path)
    cards = [n for n, (spec, _) in names.stdlib_cards().items() if spec == node.path.value] if std else []
    return f"imports `{node.path.value}`" + (" (stdlib)" if std else f"\n\n{target}") + (
        "\n\ncards: " + ", ".join(f"`{c}`" for c in cards) if cards else "")


def call_markdown(name: str) -> str:
    from ftlang.semantic.context import CALL_SIGNATURES

    sig = CALL_SIGNATURES.get(name)
    if sig is None:
        return f"`{name}(...)`"
    kw, positional = sig
    return f"`{name}(" + ", ".join(f"{k} = ..." for k in kw) + ")`" + (
        f" · {positional} positional argument{'s' * (positional != 1)}" if positional and positional < 99 else "")
