"""Operator precedence: the one table that the parser, the formatter and the expression printer read.

Loosest first: or, and, not, comparisons, + -, * /, unary minus; a higher number binds tighter.
Binary operators are left-associative; comparisons do not chain (`a < b < c` is an error).
"""

from __future__ import annotations

BINARY: dict[str, int] = {
    "or": 1, "and": 2,
    "<": 4, "<=": 4, ">": 4, ">=": 4, "==": 4, "!=": 4,
    "+": 5, "-": 5, "*": 6, "/": 6,
}
NOT = 3
COMPARE = 4
UNARY_MINUS = 7
ATOM = 8  # names, literals, calls, parenthesized expressions


def wrap(text: str, prec: int, at_least: int) -> str:
    """`text` (an operand of precedence `prec`) in parentheses when its position needs `at_least`."""
    return text if prec >= at_least else f"({text})"
