"""Rows and their hashes: the leaf every data module shares.

A row is a canonical dict (see formats.py) plus "_meta": {"source", "line", "augmented"?, "mixed"?,
"origin"?}. Its content hash covers the public fields only, so bookkeeping never changes identity.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from ftlang.diagnostics import Diagnostic


@dataclass
class SourceRows:
    """One source read and normalized: good rows, one positioned problem per bad row, and counts."""

    name: str
    display: str  # the path (or hf id) spans and messages use
    rows: list[dict] = field(default_factory=list)  # canonical rows with "_meta" {source, line}
    problems: list[Diagnostic] = field(default_factory=list)  # one per bad row
    fatal: Diagnostic | None = None  # the file as a whole is unreadable / empty
    quarantined: list[dict] = field(default_factory=list)  # {source, line, code, reason, raw}
    read: int = 0
    fingerprint: str = ""


def batched(rows: Iterable, size: int) -> Iterator[list]:
    """`rows` in lists of `size` (the last one shorter), read as they are consumed."""
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def public(row: dict) -> dict:
    """The row's canonical fields, without ftlang's bookkeeping keys (those start with '_')."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


#: json.dumps(..., sort_keys=True, ensure_ascii=False, separators=(",", ":")) without building an encoder per
#: call (a million rows: seconds)
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


def content_text(row: dict) -> str:
    """The row's public fields as canonical JSON (sorted keys): what its content hash covers."""
    return _CANONICAL(public(row))


def content_hash(row: dict) -> str:
    return hashlib.sha256(content_text(row).encode("utf-8")).hexdigest()


_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize_text(value):
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).lower()
        return _SPACE.sub(" ", _PUNCT.sub("", text)).strip()
    if isinstance(value, list):
        return [normalize_text(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize_text(v) for k, v in value.items()}
    return value


def normalized_hash(row: dict) -> str:
    """The hash `dedupe(normalized)` compares: case, punctuation and spacing folded away."""
    return content_hash({"x": normalize_text(public(row))})
