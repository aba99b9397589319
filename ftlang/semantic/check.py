"""The checker pipeline: an ordered tuple of passes over one shared state (sqlglot style).

    parse+resolve → bind (types, names, paths) → rules → build plans → suppress & sort

`check_file(path)` checks every recipe of a file (a file of only model cards checks its cards);
`check_text(text, path)` does the same for text not on disk (fuzzing, editors); an editor passes
`root=` (confine every read to its workspace) and `overlay=` (unsaved texts of open files, by real path).
`resolve_program(...)` runs only the first pass: the name tables (cards, recipes, params, bound bodies)
that go-to-definition and find-references need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ftlang.diagnostics import Diagnostic, DiagnosticError, Severity, error, has_errors, sort_diagnostics
from ftlang.plan import Plan
from ftlang.source import SourceFile


@dataclass
class CheckResult:
    diagnostics: list[Diagnostic]
    plan: Plan | None  # the selected recipe's plan (or the only one's), None when it has errors
    sources: dict[str, SourceFile]
    plans: dict[str, Plan | None] = field(default_factory=dict)  # every checked recipe
    recipes: list[str] = field(default_factory=list)  # recipes defined in the file, in order
    program: object = None  # the resolved Program (name tables, loaded modules), for editors
    contexts: dict = field(default_factory=dict)  # recipe name -> RecipeContext (cards, method, blocks)
    sweeps: dict = field(default_factory=dict)  # recipe name -> its checked Sweep (semantic/sweep.py)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


@dataclass
class _State:
    path: Path
    text: str | None
    sets: dict[str, str]
    recipe: str | None
    root: Path | None = None  # overrides the project root (an editor's workspace)
    overlay: dict[str, str] = field(default_factory=dict)  # real path -> unsaved text
    program: object = None
    contexts: dict = field(default_factory=dict)  # recipe name -> its frozen RecipeContext
    recipe_diags: dict[str, list[Diagnostic]] = field(default_factory=dict)  # binding's and rules' findings
    diags: list[Diagnostic] = field(default_factory=list)
    plans: dict[str, Plan | None] = field(default_factory=dict)
    expand: bool = True  # check each sweep's points (False while checking one point)
    sweeps: dict = field(default_factory=dict)


def _resolve(st: _State) -> None:
    from ftlang.semantic.resolve import load_program

    st.program = load_program(st.path, text=st.text, root=st.root, overlay=st.overlay, sets=st.sets)
    st.diags.extend(st.program.diags)


def _selected(st: _State) -> list[str]:
    names = st.program.main_recipes()
    if st.recipe is not None:
        return [st.recipe] if st.recipe in st.program.bound else []
    return [n for n in names if n in st.program.bound]


def _bind(st: _State) -> None:
    from ftlang.semantic.build import bind, card_from_node
    from ftlang.syntax import ast

    if st.recipe is not None and st.recipe not in st.program.bound:
        from ftlang.semantic.values import did_you_mean

        guess = did_you_mean(st.recipe, st.program.bound)
        st.diags.append(error("FT201", f"no recipe `{st.recipe}` in {st.path}", None,
                              f"did you mean `{guess}`?" if guess else
                              "recipes: " + (", ".join(st.program.main_recipes()) or "(none)")))
    for name in _selected(st):
        st.contexts[name], st.recipe_diags[name] = bind(st.program, st.program.bound[name])
    main = st.program.main_module
    if main is not None:  # the file's own model cards are checked even when no recipe uses them
        for it in main.items:
            if isinstance(it, ast.ModelCard) and st.program.cards.get(it.name) is it:
                st.diags.extend(card_from_node(it, st.program.param_values)[1])


def _rules(st: _State) -> None:
    from ftlang.semantic.rules import run_rules

    for name, ctx in st.contexts.items():
        st.recipe_diags[name] += run_rules(ctx)


def _build(st: _State) -> None:
    from ftlang.semantic.build import assemble
    sources = st.program.sources
    # a code the user suppressed on its line (`# ftlang: ignore[FT501]`) no longer blocks the plan
    st.diags = _suppress(st.diags, sources)
    # resolution errors (imports, --set, duplicate names) make every plan of the file suspect
    global_errors = has_errors(st.diags)
    for name, ctx in st.contexts.items():
        diags = _suppress(st.recipe_diags[name], sources)
        plan, more = (None, []) if global_errors else assemble(ctx, diags)
        st.plans[name] = plan
        st.diags += diags + more


def _sweeps(st: _State) -> None:
    """Each point of a recipe's sweep checked like the recipe with `--set` for its values."""
    from dataclasses import replace

    from ftlang.semantic.sweep import point_label, point_plan, read_sweep

    for name, ctx in st.contexts.items():
        node = ctx.block_nodes.get("sweep")
        if node is None or not st.expand:
            continue
        plan = st.plans.get(name)
        sweep, diags = read_sweep(name, node, st.program.params, list(plan.eval.metrics) if plan else None)
        st.diags += diags
        if sweep is None or plan is None:
            continue
        if sweep.optuna:  # its points are chosen while it runs: each is checked then, like a grid's here
            st.sweeps[name] = replace(sweep, registry=plan.export.registry, base_hash=point_plan(plan).sha256,
                                      plan_point=partial(_optuna_point, st, name, node.kind_span))
            continue
        points = []
        for point in sweep.points:
            res = _run(_State(st.path, st.text, {**st.sets, **point.sets}, name, st.root, st.overlay, expand=False))
            if res.plan is None:
                first = next((d for d in res.diagnostics if d.severity is Severity.ERROR), None)
                why = f"{first.code}: {first.message}" if first else "it has errors"
                st.diags.append(error("FT241", f"sweep point {point_label(point)} does not check: {why}",
                                      node.kind_span, "check it alone: ftlang check FILE " +
                                      " ".join(f"--set {k}={v}" for k, v in point.sets.items())))
            points.append(replace(point, plan=point_plan(res.plan) if res.plan else None))
        st.sweeps[name] = replace(sweep, points=tuple(points), registry=plan.export.registry)


def _optuna_point(st: _State, name: str, span, sets: dict[str, str]):
    """An optuna trial's plan: the recipe checked with `--set` for its values, as a grid point is above."""
    from ftlang.semantic.sweep import point_plan

    res = _run(_State(st.path, st.text, {**st.sets, **sets}, name, st.root, st.overlay, expand=False))
    if res.plan is None:
        first = next((d for d in res.diagnostics if d.severity is Severity.ERROR), None)
        label = ", ".join(f"{k} = {v}" for k, v in sets.items())
        raise DiagnosticError([error("FT241", f"sweep trial ({label}) does not check: "
                                     f"{first.code + ': ' + first.message if first else 'it has errors'}", span,
                                     "check it alone: ftlang check FILE " +
                                     " ".join(f"--set {k}={v}" for k, v in sets.items()))])
    return point_plan(res.plan)


def _finish(st: _State) -> None:
    diags = sort_diagnostics(st.diags)
    st.diags = _suppress(diags, st.program.sources if st.program is not None else {})


def _suppress(diags: list[Diagnostic], sources: dict[str, SourceFile]) -> list[Diagnostic]:
    # most files carry no suppression comment: skip the line-by-line scan for them
    if not diags or not any("ftlang:" in s.text.lower() for s in sources.values()):
        return diags
    from ftlang.syntax.suppress import apply_suppressions

    return apply_suppressions(diags, sources)


PASSES: tuple[Callable[[_State], None], ...] = (_resolve, _bind, _rules, _build, _sweeps, _finish)


def _run(st: _State) -> CheckResult:
    for p in PASSES:
        p(st)
    program = st.program
    recipes = program.main_recipes() if program is not None else []
    plan = None
    if st.recipe is not None:
        plan = st.plans.get(st.recipe)
    elif len(st.plans) == 1:
        plan = next(iter(st.plans.values()))
    return CheckResult(st.diags, plan, program.sources if program is not None else {}, st.plans, recipes,
                       program, st.contexts, st.sweeps)


def check_file(path: str | Path, *, sets: dict[str, str] | None = None, recipe: str | None = None) -> CheckResult:
    from ftlang.semantic.paths import path_problem

    p = Path(path)
    if why := path_problem(p, "file"):
        d = error("FT206", why, None, "check the path")
        return CheckResult([d], None, {})
    return _run(_State(p, None, dict(sets or {}), recipe))


def check_text(text: str, path: str | Path = "recipe.ft", *, sets: dict[str, str] | None = None,
               recipe: str | None = None, root: Path | None = None,
               overlay: dict[str, str] | None = None) -> CheckResult:
    return _run(_State(Path(path), text, dict(sets or {}), recipe, root, dict(overlay or {})))


def resolve_program(path: str | Path, text: str | None = None, *, root: Path | None = None,
                    overlay: dict[str, str] | None = None):
    """Only the resolve pass (parse, imports, params, extends): a Program whose name tables, modules and
    bound recipe bodies an editor searches for definitions and references."""
    st = _State(Path(path), text, {}, None, root, dict(overlay or {}))
    _resolve(st)
    return st.program
