"""The middle end: resolved, typed, rule-checked recipes → sealed plans. Torch-free.

    check.check_file(path, sets=, recipe=) / check.check_text(text, path) -> CheckResult
    resolve.py    load_program: imports, params and --set, extends, name tables, project root
    schema.py     per-block key tables (BLOCKS) read from the plan models' Fields; drive values.py's
                  type checker, `ftlang schema --keys`, the docs and the LSP
    context.py    RecipeContext (a bound recipe, frozen: what rules read) and a binder's Scope
    models.py     model sources and cards (stdlib card, local config.json, GGUF header, hub id)
    datasets.py   data sources and pipelines; steps.py one binder per plan step model
    exprs.py      filter/gate expressions → plan Expr
    build.py      binders of the other blocks, each (inputs) → (part, diagnostics); bind; assemble
    rules/        one registered function per rule (@rule(code, title, explain=...))
    cards.py, resources.py, gguf_meta.py   dimensions, parameter counts, memory estimate
"""
