"""The middle end: resolved, typed, rule-checked recipes → sealed plans. Torch-free.

    check.check_file(path, sets=, recipe=) / check.check_text(text, path) -> CheckResult
    resolve.py    imports, params and --set, extends, name tables, project root
    schema.py     per-block key tables (BLOCKS), drive values.py's type checker and the docs
    context.py    RecipeContext: the typed blocks and plan parts of one recipe
    models.py     model sources and cards (stdlib card, local config.json, GGUF header, hub id)
    datasets.py   data sources and pipelines; filter/gate expressions → plan Expr
    build.py      the other blocks and the final Plan (assemble)
    rules/        one registered function per rule (@rule(code, title, explain=...))
    cards.py, resources.py, gguf_meta.py   dimensions, parameter counts, memory estimate
"""
