"""A filled-in Draft as `.ft` text, laid out by ftlang's own formatter."""

from __future__ import annotations

from ftlang.importers.common import Draft, Source, quote

_ORDER = ("train", "hardware", "eval", "export")


def _body(pairs: dict[str, str], nested: dict[str, dict[str, str]] | None = None) -> list[str]:
    lines = [f"{k} = {v}" for k, v in pairs.items()]
    for name, inner in (nested or {}).items():
        if inner:
            lines.append(f"{name} {{ " + ", ".join(f"{k} = {v}" for k, v in inner.items()) + " }")
    return lines


def _block(head: str, lines: list[str]) -> list[str]:
    if not lines:
        return [f"  {head} {{ }}"]
    return [f"  {head} {{", *(f"    {line}" for line in lines), "  }"]


def _source(s: Source) -> str:
    parts = [f"format = {s.format}"]
    if s.fields:
        parts.append("fields { " + ", ".join(f"{k} = {quote(str(v))}" for k, v in s.fields.items()) + " }")
    return f"  data {s.name} = {s.call} {{ " + ", ".join(parts) + " }"


def _datasets(d: Draft) -> list[str]:
    """`dataset train = a | concat(b)`; with a row cap per source, each later source is capped by a dataset of
    its own first (`dataset b_first = b | head(N)`)."""
    head = [f"head({d.head})"] if d.head else []
    extra, out = [], []
    for role, first in (("train", d.train_data), ("validation", d.validation_data)):
        if not first:
            continue
        steps = []
        for step in d.steps.get(role, []):
            if head and step.startswith("concat("):
                name = step[len("concat("):-1]
                extra.append(f"  dataset {name}_first = {name} | {head[0]}")
                step = f"concat({name}_first)"
            steps.append(step)
        out.append(f"  dataset {role} = " + " | ".join([first, *head, *steps]))
    return extra + out


def render(d: Draft) -> str:
    out = [f"# Imported from {d.origin} ({d.tool}) by `ftlang import`: review it before running."]
    local = [s.call.partition("(")[2].rstrip(")") for s in d.sources if not s.call.startswith("hf_dataset(")]
    todo = d.todo + ([f"the data files ({', '.join(local)}) are read relative to this recipe: copy them next to it "
                      "or fix the paths (FT203 until they exist)"] if local else [])
    out += [f"# to do: {t}" for t in todo]
    out += [f"# not imported: {n}" for n in d.notes]
    out.append("")
    out += [f"import {quote(i)}" for i in dict.fromkeys(d.imports)]
    for card in d.cards:
        out += ["", card]
    out += ["", f"recipe {d.name} {{", f"  model = {d.model}"]
    out += [f"  {k} = {v}" for k, v in d.blocks.get("recipe", {}).items()]
    out += [_source(s) for s in d.sources]
    out += _datasets(d)
    if d.split:
        out.append(f"  split train {{ validation = {d.split} }}")
    b = d.blocks
    out += _block(f"method {d.method}", _body(b.get(d.method_block(), {}),
                                                {"quant": b.get("quant", {})} if d.method == "qlora" else None))
    nested = {"train": {"early_stop": b.get("early_stop", {})}, "eval": {"generation": b.get("generation", {})}}
    for name in _ORDER:
        if b.get(name) or any(nested.get(name, {}).values()):
            out += _block(name, _body(b.get(name, {}), nested.get(name)))
    out.append("}")
    return formatted("\n".join(out) + "\n")


def formatted(text: str) -> str:
    from ftlang.syntax.format import format_text

    result, diags = format_text(text, "<import>")
    if result is None:  # the writer produced text the parser refuses: a bug here, not in the config
        raise RuntimeError("ftlang import wrote an unparsable recipe: "
                           + "; ".join(d.message for d in diags) + "\n" + text)
    return result
