"""The codes of a recipe's `sweep` block (FT24x): its shape, and a point that does not check."""

from __future__ import annotations

from ftlang.codes.model import Code, Stage

CODES: tuple[Code, ...] = (
    Code("FT240", Stage.CHECK, "bad sweep",
         "A `sweep` block varies declared `param`s: `grid { lr = [1e-4, 2e-4], rank = [8, 16] }` lists each "
         "param's values (a non-empty list), or `random { lr = loguniform(1e-5, 1e-3), rank = choice(8, 16, 32) }` "
         "with `trials = N` (and `seed = 0`) draws N points; `select = min(perplexity)` (or `max(...)`) names one metric of "
         "the recipe's `eval` block. A name that is not a declared param, an empty list, a missing or unknown "
         "select, or an unknown statement in the block is this error.",
         help="sweep { grid { NAME = [v1, v2] }  select = min(METRIC) }"),
    Code("FT241", Stage.CHECK, "sweep point does not check",
         "Every point of a sweep is checked like the recipe run with `--set` for its values; a point that has "
         "an error (a value out of range, a plan that does not fit the declared hardware) is this error, "
         "naming the point and the first problem. Check it alone with `ftlang check FILE --set NAME=VALUE`."),
)
