"""`ftlang import`'s codes (FT95x)."""

from __future__ import annotations

from ftlang.codes.model import Code, Stage

CODES: tuple[Code, ...] = (
    Code("FT950", Stage.IMPORT, "config cannot be read",
         "`ftlang import` reads a YAML mapping of settings: the file is missing, unreadable, not valid YAML or "
         "not a mapping."),
    Code("FT951", Stage.IMPORT, "config of an unknown tool",
         "`ftlang import` recognises Axolotl, LLaMA-Factory and torchtune configs by their keys and found none of "
         "them; say which tool wrote the file with --from."),
)
