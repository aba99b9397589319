"""Build the Lark LALR parser once and keep its tables in a JSON file in the user's cache dir.

Lark's own `cache=` option pickles the parser; loading a pickle from a shared cache directory would
let anyone who can write there run code, so the tables are stored as JSON instead. Any
problem with the cache (unwritable dir, corrupt or stale file) falls back to building in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ftlang.atomic import write_text
from ftlang.resources import grammar_path, read_shipped

_FORMAT = 2  # bump when the encoding below changes


def cache_dir() -> Path:
    if os.environ.get("FTLANG_CACHE_DIR"):
        return Path(os.environ["FTLANG_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "ftlang"
    return Path.home() / ".cache" / "ftlang"


_INT_KEYS = "\u0000m"  # marks a dict whose keys are not strings (JSON objects only have string keys)


def _encode(obj: Any) -> Any:
    # Lark's tables are dicts, lists, tuples and scalars; tuples load back as lists, which Lark
    # only ever unpacks, and dicts keyed by state numbers are tagged so their int keys survive.
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v) for k, v in obj.items()}
        return {_INT_KEYS: [[_encode(k), _encode(v)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot cache a {type(obj).__name__}")


def _object_hook(d: dict) -> Any:
    pairs = d.get(_INT_KEYS)
    if pairs is not None and len(d) == 1:
        return {k: v for k, v in pairs}
    return d


def load_lark(options: dict[str, Any], callbacks: dict[str, Any]) -> Any:
    import lark
    from lark import Lark
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    text = read_shipped(grammar_path())
    key = hashlib.sha256(
        json.dumps([_FORMAT, lark.__version__, text, sorted(options.items())]).encode()
    ).hexdigest()[:24]
    path = cache_dir() / f"grammar-{key}.json"
    try:
        blob = json.loads(path.read_text(encoding="utf-8"), object_hook=_object_hook)
        return Lark._load_from_dict(blob["data"], blob["memo"], lexer_callbacks=callbacks)
    except Exception:  # noqa: BLE001 - a missing, stale or corrupt cache is rebuilt below
        pass
    parser = Lark(text, lexer_callbacks=callbacks, **options)
    try:
        data, memo = parser.memo_serialize([TerminalDef, Rule])
        data["options"] = {k: v for k, v in data["options"].items() if k != "lexer_callbacks"}
        blob = json.dumps({"data": _encode(data), "memo": _encode(memo)})
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, blob)
    except Exception:  # noqa: BLE001 - an unwritable cache only costs the build time next run
        pass
    return parser
