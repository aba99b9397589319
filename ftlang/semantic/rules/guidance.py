"""Guidance from practice: warnings, never errors (suppress one with `# ftlang: ignore[CODE]`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ftlang.diagnostics import Diagnostic, info, warning
from ftlang.semantic.rules.registry import rule

if TYPE_CHECKING:
    from ftlang.semantic.context import RecipeContext

#: typical peak learning rates (Hugging Face PEFT docs, QLoRA paper, common recipes)
LR_RANGES = {"full": (1e-5, 5e-5), "lora": (1e-4, 3e-4), "qlora": (2e-4, 5e-4)}
MIN_ROWS, MAX_ROWS = 1_000, 100_000
_ROWS_CACHE: dict[tuple[str, int, int], int | None] = {}


@rule("FT401")
def lr_range(ctx: RecipeContext) -> Iterator[Diagnostic]:
    rng = LR_RANGES.get(ctx.method_kind or "")
    tb = ctx.blocks.get("train")
    if rng is None or ctx.train is None or tb is None:
        return
    lr = ctx.train.lr
    if not rng[0] <= lr <= rng[1]:
        yield warning("FT401", f"lr {lr:g} is outside the typical range for {ctx.method_kind} ({rng[0]:g}..{rng[1]:g})",
                      tb.span_of("lr"), f"try lr = {rng[0]:g}..{rng[1]:g} for {ctx.method_kind}")


@rule("FT402")
def alpha_ratio(ctx: RecipeContext) -> Iterator[Diagnostic]:
    m = ctx.method
    if ctx.method_kind not in ("lora", "qlora") or m is None:
        return
    if m.alpha != 2 * m.r:
        tb = ctx.blocks["method"]
        yield warning("FT402", f"alpha = {m.alpha:g} with r = {m.r}: the usual choice is alpha = 2·r = {2 * m.r}",
                      tb.span_of("alpha") if tb.has("alpha") else tb.span_of("r"), f"set alpha = {2 * m.r}")


@rule("FT403")
def rank_range(ctx: RecipeContext) -> Iterator[Diagnostic]:
    m = ctx.method
    if ctx.method_kind in ("lora", "qlora") and m is not None and not 4 <= m.r <= 128:
        yield warning("FT403", f"r = {m.r} is outside the usual 4..128", ctx.blocks["method"].span_of("r"),
                      "r = 8..64 suits most tasks")


def count_rows(path: Path) -> int | None:
    """Rows of a local jsonl/csv file, counted by lines (cheap; no parsing); a .json array under 20 MB
    by its length. None for other formats."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv", ".ndjson", ".json"):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _ROWS_CACHE and suffix == ".json":
        _ROWS_CACHE[key] = _json_rows(path) if st.st_size < 20_000_000 else None
    if key not in _ROWS_CACHE:
        n = 0
        with path.open("rb") as f:
            for line in f:
                if line.strip():
                    n += 1
        _ROWS_CACHE[key] = max(0, n - 1) if suffix == ".csv" else n
    return _ROWS_CACHE[key]


def _json_rows(path: Path) -> int | None:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # unreadable: `check --data` reports it with its line
    return len(data) if isinstance(data, list) else None


def _train_source(ctx: RecipeContext):
    name, seen = "train", set()
    while name in ctx.pipelines and name not in seen:
        seen.add(name)
        name = ctx.pipelines[name].source
    return ctx.data.get(name)


def train_rows_hint(ctx: RecipeContext) -> float | None:
    """Training rows as counted cheaply (see count_rows), less a split's validation share; None unknown."""
    src = _train_source(ctx)
    if src is None or src.path is None:
        return None
    n = count_rows(ctx.root / src.path)
    if n is None:
        return None
    split = ctx.split
    if split is None or split.dataset != "train":
        return float(n)
    return max(n - split.first, 0.0) if split.first else n * (1 - (split.validation or 0.0))


@rule("FT404")
def train_rows(ctx: RecipeContext) -> Iterator[Diagnostic]:
    src = _train_source(ctx)
    if src is None or src.path is None:
        return
    n = count_rows(ctx.root / src.path)
    if n is None:
        return
    decl = ctx.data_nodes.get(src.name)
    span = decl.source.span if decl is not None else ctx.bound.node.name_span
    if n < MIN_ROWS:
        yield warning("FT404", f"the training set has only {n:,} row{'s' if n != 1 else ''}", span,
                      "under 1,000 rows a model tends to memorise; add data or augment(...)")
    elif n > MAX_ROWS:
        yield warning("FT404", f"the training set has {n:,} rows", span,
                      "over 100,000 rows: consider sample(n = ...) or fewer epochs")


@rule("FT405")
def has_validation(ctx: RecipeContext) -> Iterator[Diagnostic]:
    if "split" not in ctx.block_nodes and "validation" not in ctx.dataset_nodes:
        yield warning("FT405", f"recipe `{ctx.name}` has no validation set", ctx.bound.node.name_span,
                      "add split train { validation = 5% } or dataset validation = ...")


@rule("FT406")
def has_gate(ctx: RecipeContext) -> Iterator[Diagnostic]:
    if not ctx.gate_nodes:
        node = ctx.block_nodes.get("eval")
        yield warning("FT406", f"recipe `{ctx.name}` has no gate", node.kind_span if node else ctx.bound.node.name_span,
                      "add e.g. eval { gate perplexity < 20 }")


@rule("FT407")
def remote_code(ctx: RecipeContext) -> Iterator[Diagnostic]:
    top = ctx.top
    if top is not None and top.get("trust_remote_code"):
        yield warning("FT407", "trust_remote_code = true runs the model repository's own code", top.span_of(
            "trust_remote_code"), "pin the model with revision = \"<commit>\" and review its code")
    elif ctx.card is not None and ctx.card.source.trust_remote_code and ctx.model_span is not None:
        yield warning("FT407", "trust_remote_code = true runs the model repository's own code", ctx.model_span,
                      "pin the model with revision = \"<commit>\" and review its code")


@rule("FT408")
def seq_len_context(ctx: RecipeContext) -> Iterator[Diagnostic]:
    tb = ctx.blocks.get("train")
    card = ctx.card
    if tb is None or card is None or card.max_position is None or ctx.train is None:
        return
    if tb.has("max_seq_len") and ctx.train.max_seq_len > card.max_position:
        yield warning("FT408", f"max_seq_len {ctx.train.max_seq_len} exceeds the model's context of "
                      f"{card.max_position} tokens", tb.span_of("max_seq_len"),
                      f"use max_seq_len <= {card.max_position}")


_DECIMAL = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


@rule("FT410")
def gpu_memory_units(ctx: RecipeContext) -> Iterator[Diagnostic]:
    from ftlang.syntax import ast

    tb = ctx.blocks.get("hardware")
    field = tb.values.get("memory") if tb is not None else None
    if field is None or not isinstance(field.node, ast.Size) or tb.get("device") == "cpu":
        return
    unit = next((u for u in _DECIMAL if field.node.text.endswith(u)), None)
    if unit is None:
        return
    number = field.node.text[: -len(unit)]
    binary = field.value / 2 ** (30 if unit in ("GB", "TB") else 20)
    yield info("FT410", f"`memory = {field.node.text}` is {binary:.1f}{'GiB' if unit in ('GB', 'TB') else 'MiB'}: "
               "GPU memory is sold in binary units", field.node.span,
               f"write `memory = {number}{unit[0]}iB` for a card sold as {field.node.text}")
