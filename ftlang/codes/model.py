"""What a diagnostic code is: its stable code, owning stage, title, default severity, explanation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ftlang.diagnostics import Severity


class Stage(str, Enum):
    """The stage that reports a code (and owns its meaning)."""

    SYNTAX = "syntax"
    FORMAT = "format"
    RESOLVE = "resolve"
    CHECK = "check"
    RULES = "rules"
    MODEL = "model"
    DATA = "data"
    RUN = "run"
    GATES = "gates"
    EXPORT = "export"
    REGISTRY = "registry"
    REPORT = "report"
    SERVE = "serve"
    IMPORT = "import"  # `ftlang import` reading a foreign config
    INSTALL = "install"  # the environment ftlang runs in (a missing dependency)
    INTERNAL = "internal"


@dataclass(frozen=True)
class Code:
    code: str  # FTnnn; never reused for another meaning
    stage: Stage
    title: str  # a short phrase, lower case (docs headings, `ftlang explain --list`, SARIF rules)
    explain: str  # what it means and what to do (`ftlang explain CODE`, docs/diagnostics.md)
    severity: Severity = Severity.ERROR  # the usual severity (a rule may still downgrade its own)
    help: str | None = None  # the default help line, where the reporter gives none of its own
