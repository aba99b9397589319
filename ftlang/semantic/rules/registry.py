"""The rule registry: one small function per rule, registered with its stable code.

    @rule("FT301")
    def qlora_quant(ctx: RecipeContext) -> Iterable[Diagnostic]: ...

The code's title, severity and explanation are declared once in the code registry
(ftlang/codes/rules.py); `@rule` refuses a code that is not declared there as a rule's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftlang.codes import Stage, lookup
from ftlang.diagnostics import Diagnostic

if TYPE_CHECKING:
    from ftlang.semantic.context import RecipeContext

RuleFn = Callable[["RecipeContext"], Iterable[Diagnostic]]


@dataclass(frozen=True)
class Rule:
    code: str
    fn: RuleFn


RULES: list[Rule] = []


def rule(code: str) -> Callable[[RuleFn], RuleFn]:
    declared = lookup(code)
    if declared is None or declared.stage is not Stage.RULES:
        raise ValueError(f"rule {code} is not declared as a rule's code in ftlang/codes/rules.py")

    def deco(fn: RuleFn) -> RuleFn:
        RULES.append(Rule(code, fn))
        return fn

    return deco
