"""The command line's own codes (FT9xx): an install that lacks something ftlang needs."""

from __future__ import annotations

#: code → explanation (the first sentence is the title)
CODES: dict[str, str] = {
    "FT901": "A Python package ftlang needs is not installed. check, fmt, plan, explain and schema need only "
             "the core dependencies; run, data and serve need the `train` extra (pip install 'ftlang[train]'), "
             "text metrics the `eval` extra and augmentation the `augment` extra. The message names the "
             "package and the extra that provides it.",
}
