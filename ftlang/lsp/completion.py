"""Completion from the cursor's context (read from the raw text, so it works while the file is broken):
keys of the enclosing block, enum values, model cards (imported and stdlib, with the import added),
target modules of the recipe's card, pipeline steps, metric names, data and dataset names in scope."""

from __future__ import annotations

from lsprotocol import types as T

from ftlang.lsp import names
from ftlang.lsp.cursor import Cursor, cursor_at
from ftlang.lsp.state import Analysis, Document
from ftlang.semantic.schema import METHOD_KINDS, block

K = T.CompletionItemKind
TOP_LEVEL = ("import", "param", "recipe", "model_card")


def _item(label: str, kind: T.CompletionItemKind, detail: str | None = None, doc: str | None = None,
          **kw) -> T.CompletionItem:
    return T.CompletionItem(label=label, kind=kind, detail=detail, **kw, documentation=T.MarkupContent(
        kind=T.MarkupKind.Markdown, value=doc) if doc else None)


def complete(scope: Analysis | None, doc: Document, offset: int) -> list[T.CompletionItem]:
    """Completion at an offset of the document's current text; `scope`: the last analysis of it that
    parsed (its name tables: cards, params, the recipe's card and data), if any."""
    text = doc.text
    cur = cursor_at(text, offset)
    if cur.in_string:
        return _strings(cur, doc, scope)
    w = cur.words
    if not cur.blocks:
        if not w:
            return [_item(k, K.Keyword) for k in TOP_LEVEL]
        if len(w) >= 3 and w[0] == "recipe" and w[2] == "extends":
            program = scope.program if scope else None
            return [_item(r, K.Class, "recipe") for r in (program.recipes if program else ())]
        return []
    if not w:
        return _statement_start(cur)
    head = w[0]
    if head == "method" and len(w) == 1:
        return [_item(k, K.EnumMember, "method", (block(f"method.{k}") or block("recipe")).doc) for k in METHOD_KINDS]
    if head == "split" and len(w) == 1 or head == "forgetting" and w[-1] == "on":
        return _data(scope, cur, text)
    if head == "forgetting":
        return [_item("on", K.Keyword)]
    if head == "gate":
        return _gate_names(scope, cur)
    if head == "dataset":
        return _pipeline(scope, cur, text)
    if head == "data" and len(w) == 3 and w[2] == "=":
        from ftlang.semantic.context import DATA_SOURCES

        return [_item(s, K.Function, "data source") for s in DATA_SOURCES]
    if len(w) >= 2 and w[1] == "=":
        return _values(scope, cur, head, text)
    return []


def _statement_start(cur: Cursor) -> list[T.CompletionItem]:
    schema = block(cur.block or "")
    if schema is None:
        return []
    items = [_item(k.name, K.Property, k.type + (" (required)" if k.required else ""), k.doc,
                   insert_text=f"{k.name} = ") for k in schema.keys if k.name not in cur.assigned]
    for b in schema.blocks:
        sb = block(b)
        items.append(_item(b, K.Module, "block", sb.doc if sb else None))
    statements = {"data": "data NAME = jsonl(\"file.jsonl\")", "dataset": "dataset NAME = SOURCE | steps",
                  "gate": "gate METRIC < VALUE", "forgetting": "forgetting on NAME", "alias": "alias NAME = [modules]"}
    items.extend(_item(s, K.Keyword, statements.get(s)) for s in schema.statements)
    return items


def _strings(cur: Cursor, doc: Document, scope: Analysis | None) -> list[T.CompletionItem]:
    w = cur.words
    if w == ["import"]:
        from ftlang.resources import stdlib_dir

        items = [_item(f"stdlib/models/{p.name}", K.File, "stdlib model cards")
                 for p in sorted((stdlib_dir() / "models").glob("*.ft"))]
        return items + _local_files(doc, scope)
    if len(w) >= 2 and w[1] == "=" and w[0] == "gpu":
        from ftlang.semantic.context import hardware_catalog

        return [_item(g, K.Value, "GPU") for g in hardware_catalog()]
    if len(w) >= 2 and w[1] == "=" and w[0] == "template":
        from ftlang.resources import stdlib_dir

        return [_item(p.stem, K.Value, "chat template") for p in sorted((stdlib_dir() / "templates").glob("*.jinja"))]
    return []


def _local_files(doc: Document, scope: Analysis | None) -> list[T.CompletionItem]:
    """.ft files of the workspace, relative to the document (only when it was checked inside one)."""
    import os

    from ftlang.lsp.definitions import workspace_files

    root = scope.root if scope is not None else None
    if root is None:
        return []
    here = doc.path.parent
    return [_item(os.path.relpath(p, here).replace(os.sep, "/"), K.File, "recipe file")
            for p in workspace_files([root]) if p.resolve() != doc.path.resolve()]


def _data(scope: Analysis | None, cur: Cursor, text: str) -> list[T.CompletionItem]:
    return [_item(n, K.Variable, kind) for n, kind in names.data_names(scope, cur.recipe, text).items()]


def _gate_names(scope: Analysis | None, cur: Cursor) -> list[T.CompletionItem]:
    ctx = names.context_for(scope, cur.recipe)
    if ctx is not None and ctx.eval is not None:
        from ftlang.semantic.rules.references import available_names

        found = available_names(ctx)
    else:
        from ftlang.semantic.schema import METRICS

        found = [*METRICS, "overfitting", "forgetting"]
    return [_item(n, K.Field, "metric") for n in found]


def _pipeline(scope: Analysis | None, cur: Cursor, text: str) -> list[T.CompletionItem]:
    from ftlang.semantic.context import AUGMENT_OPS, STEPS

    w = cur.words
    if cur.call == "augment":
        return [_item(op, K.Function, "augmentation") for op in AUGMENT_OPS]
    if cur.call == "mix" or (len(w) == 3 and w[2] == "=") and not cur.open:
        return _data(scope, cur, text)
    if w[-1] == "|" and not cur.open:
        return [_item(s, K.Function, "pipeline step") for s in STEPS]
    return []


def _values(scope: Analysis | None, cur: Cursor, key: str, text: str) -> list[T.CompletionItem]:
    schema = block(cur.block or "")
    ks = schema.key(key) if schema is not None else None
    if ks is None:
        return []
    if cur.block == "recipe" and key == "model":
        return _cards(scope, text)
    if cur.block == "recipe" and key == "task":
        return [_item("causal_lm", K.EnumMember), _item("classify", K.Function, "classify(labels = [...])")]
    items: list[T.CompletionItem] = []
    if ks.enum:
        items += [_item(e, K.EnumMember, key) for e in ks.enum]
    elif ks.type == "ident_list":
        ctx = names.context_for(scope, cur.recipe)
        card = ctx.card if ctx is not None else None
        if card is not None:
            items += [_item(al, K.Reference, "alias: " + ", ".join(mods)) for al, mods in card.aliases.items()]
            items += [_item(m, K.Field, "module") for m in card.modules if m not in card.aliases]
    elif ks.type == "bool":
        items += [_item("true", K.Value), _item("false", K.Value)]
    elif ks.type == "every":
        items += [_item("epoch", K.Value), _item("end", K.Value)]
    elif ks.type == "name":
        items += [_item(n, K.Field, "metric") for n in ("val_loss", *_gate_labels(scope, cur))]
    elif ks.name == "gpu":
        from ftlang.semantic.context import hardware_catalog

        items += [_item(g, K.Value, "GPU", insert_text=f'"{g}"') for g in hardware_catalog()]
    program = scope.program if scope is not None else None
    if program is not None and ks.type not in ("enum_list", "ident_list"):
        items += [_item(p, K.Constant, f"param = {names.value_text(program.param_values.get(p, n.value))}")
                  for p, n in program.params.items()]
    return items


def _gate_labels(scope: Analysis | None, cur: Cursor) -> list[str]:
    return [i.label for i in _gate_names(scope, cur) if i.label not in ("overfitting", "forgetting")]


def _cards(scope: Analysis | None, text: str) -> list[T.CompletionItem]:
    """Cards in scope, then stdlib cards not imported yet (accepting one adds its import)."""
    program = scope.program if scope is not None else None
    params = program.param_values if program is not None else {}
    items, seen = [], set()
    for name, node in names.cards_in_scope(scope).items():
        card = names.card_of(node, params)
        items.append(_item(name, K.Class, "model card", names.card_markdown(card, name) if card else None))
        seen.add(name)
    line = _import_line(text)
    for name, (spec, node) in names.stdlib_cards().items():
        if name in seen:
            continue
        card = names.card_of(node)
        edit = T.TextEdit(range=T.Range(start=T.Position(line=line, character=0),
                                        end=T.Position(line=line, character=0)), new_text=f'import "{spec}"\n')
        items.append(_item(name, K.Class, f"stdlib card (adds import \"{spec}\")",
                           names.card_markdown(card, name) if card else None, additional_text_edits=[edit],
                           sort_text=f"~{name}"))
    return items


def _import_line(text: str) -> int:
    """The line (0-based) after the file's last import, or after its leading comment lines."""
    lines = text.split("\n")
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].lstrip().startswith("import ")), None)
    if last is not None:
        return last + 1
    i = 0
    while i < len(lines) and lines[i].lstrip().startswith("#"):
        i += 1
    return i
