"""Resolution: load a recipe file and its imports, bind names, apply --set and `extends`.

- Imports resolve relative to the importing file; `"stdlib/..."` to the shipped stdlib. A cycle is an
  error at the import string that closes it. Each file is loaded once (diamonds are fine).
- One namespace for cards, recipes and params across the loaded files; a second definition of a
  name is an error at the second (imports load before the importing file's own definitions).
- `--set name=value` replaces a param's value, parsed as the literal it spells (int, float, 3%,
  24GB, true/false, else a string); an unknown name is an error.
- `recipe child extends parent`: the child's statements override the parent's per key; nested
  blocks merge recursively; a `method` of another kind replaces the parent's; gates in a child's
  eval replace the parent's gates.
- The project root is the nearest ancestor of the recipe holding `.git` or `pyproject.toml`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from ftlang.diagnostics import Diagnostic, error
from ftlang.resources import stdlib_dir
from ftlang.semantic.paths import _real, checked_path
from ftlang.source import SourceFile, Span
from ftlang.syntax import ast

_PARSE_CACHE: dict[tuple[str, int, int], tuple[SourceFile, ast.Module | None, list[Diagnostic]]] = {}


def project_root(path: Path) -> Path:
    return _root_of(os.path.realpath(path.parent if str(path.parent) else "."))


@lru_cache(maxsize=256)
def _root_of(start_dir: str) -> Path:
    # cached per folder: a checker process does not see projects appear around it
    start = Path(start_dir)
    for d in (start, *start.parents):
        if (d / ".git").exists() or (d / "pyproject.toml").is_file():
            return d
    return start


def _parse_file(path: Path) -> tuple[SourceFile, ast.Module | None, list[Diagnostic]]:
    """Parse a file, cached by (path as written, mtime, size): spans keep the path the user gave."""
    st = path.stat()
    return _cached_parse((str(path), st.st_mtime_ns, st.st_size),
                         lambda: SourceFile.decode(str(path), path.read_bytes()))


def _parse_overlay(path: Path, text: str) -> tuple[SourceFile, ast.Module | None, list[Diagnostic]]:
    """Parse an editor's unsaved text of an imported file, cached by the text itself."""
    return _cached_parse((str(path), -1, hash(text)), lambda: (SourceFile(str(path), text), None), text)


def _cached_parse(key: tuple, read, text: str | None = None):
    from ftlang.syntax.parser import not_utf8, parse

    hit = _PARSE_CACHE.get(key)
    if hit is None or (text is not None and hit[0].text != text):
        source, bad = read()
        # undecodable bytes would read as U+FFFD and might even check clean: an error at the first one
        module, diags = parse(source) if bad is None else (None, [not_utf8(source, bad, "nothing was checked")])
        hit = (source, module, diags)
        if len(_PARSE_CACHE) > 512:
            _PARSE_CACHE.clear()
        _PARSE_CACHE[key] = hit
    return hit


@dataclass
class BoundRecipe:
    name: str
    node: ast.Recipe
    body: tuple[ast.Stmt, ...]  # after extends: the merged statements
    chain: list[str]  # parents, nearest first


@dataclass
class Program:
    main: Path
    root: Path
    sources: dict[str, SourceFile] = field(default_factory=dict)  # by the path spans carry
    loaded: set[str] = field(default_factory=set)  # resolved paths: each file loads once
    modules: list[ast.Module] = field(default_factory=list)
    main_module: ast.Module | None = None
    cards: dict[str, ast.ModelCard] = field(default_factory=dict)
    recipes: dict[str, ast.Recipe] = field(default_factory=dict)
    params: dict[str, ast.Param] = field(default_factory=dict)
    param_values: dict[str, ast.Value] = field(default_factory=dict)  # after --set
    bound: dict[str, BoundRecipe] = field(default_factory=dict)
    diags: list[Diagnostic] = field(default_factory=list)
    overlay: dict[str, str] = field(default_factory=dict)  # real path -> unsaved text (an editor's buffers)
    #: the stdlib's card nodes by name, parsed on first call (binding matches hf("org/name") against them)
    stdlib: Callable[[], dict[str, ast.ModelCard]] = field(default=lambda: stdlib_cards(), repr=False)

    def main_recipes(self) -> list[str]:
        if self.main_module is None:
            return []
        return [it.name for it in self.main_module.items if isinstance(it, ast.Recipe)]


def import_target(spec: str, importer: Path) -> tuple[Path, bool]:
    """(file, is_stdlib) for an import string."""
    if spec == "stdlib" or spec.startswith("stdlib/"):
        return stdlib_dir() / spec[len("stdlib/"):], True
    return (importer.parent / spec), False


def load(program: Program, path: Path, stack: list[Path], via: ast.Import | None = None) -> None:
    resolved = Path(_real(str(path)))
    if str(resolved) in program.loaded:
        return
    program.loaded.add(str(resolved))
    try:
        text = program.overlay.get(str(resolved))
        source, module, diags = _parse_file(path) if text is None else _parse_overlay(path, text)
    except OSError as e:
        span = via.path.span if via else None
        program.diags.append(error("FT206", f"cannot read `{path}`: {e.strerror or e}", span,
                                   "check the path and the file's permissions"))
        return
    program.sources[source.path] = source
    program.diags.extend(diags)
    if module is None:
        return
    if not stack:
        program.main_module = module
    stack.append(resolved)
    for it in module.items:
        if isinstance(it, ast.Import):
            _load_import(program, it, resolved, stack)
    stack.pop()
    program.modules.append(module)
    for it in module.items:
        if isinstance(it, ast.ModelCard):
            _define(program, program.cards, it, "model card")
        elif isinstance(it, ast.Recipe):
            _define(program, program.recipes, it, "recipe")
        elif isinstance(it, ast.Param):
            _define(program, program.params, it, "param")


def _load_import(program: Program, imp: ast.Import, importer: Path, stack: list[Path]) -> None:
    target, is_std = import_target(imp.path.value, importer)
    span = imp.path.span
    base = stdlib_dir() if is_std else importer.parent
    written = imp.path.value[len("stdlib/"):] if is_std else imp.path.value
    # stdlib imports stay inside the stdlib: `stdlib/../../x` is no back door out of the project
    _, problem = checked_path(written, base, span, "imported file", root=stdlib_dir() if is_std else program.root,
                              missing_code="FT206")
    if problem is not None:
        if problem.code == "FT206":
            hint = "stdlib files: " + ", ".join(sorted(p.name for p in (stdlib_dir() / "models").glob("*.ft"))) \
                if is_std else "the path is relative to the importing file"
            problem = error("FT206", f"imported file `{imp.path.value}` does not exist", span, hint)
        elif problem.code == "FT204":
            problem = error("FT204", f"import `{imp.path.value}` is outside the "
                            + ("stdlib" if is_std else "project root"), span,
                            f"keep imported files inside {stdlib_dir() if is_std else program.root}")
        program.diags.append(problem)
        return
    if Path(_real(str(target))) in stack:
        program.diags.append(error("FT205", f"import cycle: `{imp.path.value}` imports this file back", span,
                                   "move the shared definitions into a third file both import"))
        return
    load(program, target, stack, imp)


def _define(program: Program, table: dict, node, what: str) -> None:
    prior = table.get(node.name)
    if prior is not None:
        program.diags.append(error(
            "FT202", f"{what} `{node.name}` is defined twice", node.name_span,
            "rename one of them", notes=(f"first defined at {prior.name_span.file}:{prior.name_span.line}:"
                                         f"{prior.name_span.column}",)))
        return
    table[node.name] = node


# ---------------------------------------------------------------------------- --set

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
_SIZE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def parse_set_value(text: str, span: Span) -> ast.Value:
    """A `--set` value as the literal it spells."""
    t = text.strip()
    if t in ("true", "false"):
        return ast.Bool(span, t == "true")
    if re.fullmatch(r"[+-]?\d+", t):
        return ast.Int(span, int(t), t)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", t):
        return ast.Float(span, float(t), t)
    if re.fullmatch(r"\d+(\.\d+)?%", t):
        return ast.Percent(span, float(t[:-1]) / 100, t)
    m = _SIZE.match(t)
    if m:
        # exact: float("9" * 400) is inf, and int(inf) raises; the range check rejects the huge size
        return ast.Size(span, int(Fraction(m.group(1)) * _SIZE_UNITS[m.group(2)]), t)
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1]
    return ast.Str(span, t)


def apply_sets(program: Program, sets: dict[str, str]) -> None:
    program.param_values = {name: p.value for name, p in program.params.items()}
    for name, text in sets.items():
        p = program.params.get(name)
        if p is None:
            from ftlang.semantic.values import did_you_mean

            guess = did_you_mean(name, program.params)
            hint = f"did you mean `{guess}`?" if guess else (
                "declared params: " + (", ".join(program.params) or "(none)"))
            program.diags.append(error("FT207", f"--set {name}: no param `{name}` in the recipe", None, hint))
            continue
        program.param_values[name] = parse_set_value(text, p.value.span)


# ---------------------------------------------------------------------------- extends


def _stmt_key(st: ast.Stmt) -> tuple | None:
    if isinstance(st, ast.Assign):
        return ("=", st.key)
    if isinstance(st, ast.Block):
        if st.kind in ("method", "split"):
            return (st.kind,)
        label = st.label.name if isinstance(st.label, ast.Ident) else st.label.value if st.label else None
        return ("block", st.kind, label if st.kind not in ("register",) else None)
    if isinstance(st, ast.DataDecl):
        return ("data", st.name)
    if isinstance(st, ast.DatasetDecl):
        return ("dataset", st.name)
    if isinstance(st, ast.Forgetting):
        return ("forgetting",)
    if isinstance(st, ast.AliasDecl):
        return ("alias", st.name)
    return None  # gates: replaced as a group


def _label_text(label) -> str | None:
    if label is None:
        return None
    return label.name if isinstance(label, ast.Ident) else label.value


def merge_body(parent: tuple[ast.Stmt, ...], child: tuple[ast.Stmt, ...]) -> tuple[ast.Stmt, ...]:
    out = list(parent)
    if any(isinstance(st, ast.Gate) for st in child):
        out = [st for st in out if not isinstance(st, ast.Gate)]
    index = {k: i for i, st in enumerate(out) if (k := _stmt_key(st)) is not None}
    for st in child:
        k = _stmt_key(st)
        if k is None or k not in index:
            out.append(st)
            if k is not None:
                index[k] = len(out) - 1
            continue
        prev = out[index[k]]
        if isinstance(prev, ast.Block) and isinstance(st, ast.Block) and (
                st.kind != "method" or _label_text(st.label) == _label_text(prev.label)):
            out[index[k]] = replace(st, body=merge_body(prev.body, st.body))
        else:
            out[index[k]] = st
    return tuple(out)


def bind_recipes(program: Program) -> None:
    for name, node in program.recipes.items():
        chain: list[str] = []
        body = node.body
        cur = node
        seen = {name}
        bodies = [node.body]
        while cur.extends is not None:
            parent_name = cur.extends.name
            parent = program.recipes.get(parent_name)
            if parent is None:
                from ftlang.semantic.values import did_you_mean

                guess = did_you_mean(parent_name, program.recipes)
                program.diags.append(error("FT211", f"recipe `{cur.name}` extends unknown recipe `{parent_name}`",
                                           cur.extends.span,
                                           f"did you mean `{guess}`?" if guess else
                                           "define the parent recipe or import the file that does"))
                break
            if parent_name in seen:
                program.diags.append(error("FT211", f"`extends` cycle through recipe `{parent_name}`",
                                           cur.extends.span, "a recipe cannot inherit from itself"))
                break
            seen.add(parent_name)
            chain.append(parent_name)
            bodies.append(parent.body)
            cur = parent
        body = bodies[-1]
        for b in reversed(bodies[:-1]):
            body = merge_body(body, b)
        program.bound[name] = BoundRecipe(name, node, body, chain)


@lru_cache(maxsize=1)
def stdlib_cards() -> dict[str, ast.ModelCard]:
    """Every card the stdlib defines, by name: what `model = hf("org/name")` is matched against when the
    recipe imports no card for that hub id. Parsed once per process, and only when asked."""
    out: dict[str, ast.ModelCard] = {}
    for f in sorted((stdlib_dir() / "models").glob("*.ft")):
        out.update(resolve(f).cards)
    return out


def load_program(main: Path, *, text: str | None = None, root: Path | None = None,
                 overlay: dict[str, str] | None = None, sets: dict[str, str] | None = None) -> Program:
    """The one entry point of resolution: parse `main` (or `text` given for it: a buffer not on disk) and
    its imports, define names, apply --set values and `extends`. `root` overrides the project root (an
    editor's workspace); `overlay` maps real paths to unsaved texts of imported files."""
    buffers = dict(overlay or {})
    if text is not None:
        buffers[_real(str(main))] = text
    program = Program(main=main, root=root or project_root(main), overlay=buffers)
    load(program, main, [])
    apply_sets(program, sets or {})
    bind_recipes(program)
    return program


def resolve(path: Path, sets: dict[str, str] | None = None) -> Program:
    return load_program(path, sets=sets)
