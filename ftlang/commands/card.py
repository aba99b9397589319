"""`ftlang card ORG/NAME [--revision R] [-o FILE]`: fetch a hub model's config.json (nothing else), write
its model card into the project and print it. `check` then reads the card offline:

    ftlang card NousResearch/Meta-Llama-3-8B          # writes cards/meta_llama_3_8b.ft
    import "cards/meta_llama_3_8b.ft"  ...  model = meta_llama_3_8b
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftlang.diagnostics import DiagnosticError, error

HELP = "fetch a hub model's config.json and write its model card into the project (online, once)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="ORG/NAME", help="the model's hub id")
    parser.add_argument("--revision", help="a branch, tag or commit (default: main)")
    parser.add_argument("--name", help="the card's name (default: from the model's name)")
    parser.add_argument("-o", "--output", metavar="FILE", help="the card file (default: cards/<name>.ft)")


def fetch_config(hub_id: str, revision: str | None = None) -> dict:
    """The model's config.json through huggingface_hub (from its cache when offline); FT223 when unavailable."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from ftlang.semantic.cards import CardError, read_config

    try:
        path = hf_hub_download(hub_id, "config.json", revision=revision)
    except LocalEntryNotFoundError:
        raise DiagnosticError([error(
            "FT223", f"cannot fetch config.json of {hub_id}: offline, and it is not in the Hugging Face cache",
            None, "run `ftlang card` once with network access (unset HF_HUB_OFFLINE), or write the card by hand "
                  "from the model's config.json")]) from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DiagnosticError([error(
            "FT223", f"cannot fetch config.json of {hub_id}: {first}", None,
            "check the hub id and revision; gated models need `huggingface-cli login` first")]) from None
    try:
        return read_config(Path(path).parent)
    except CardError as e:
        raise DiagnosticError([error("FT223", f"config.json of {hub_id}: {e}", None,
                                     "the model's repository needs a transformers config.json")]) from None


def run(args: argparse.Namespace) -> int:
    from ftlang.atomic import write_text
    from ftlang.plan import ModelSource
    from ftlang.semantic.card_text import card_name, card_text
    from ftlang.semantic.cards import CardError, UnknownFamily, card_from_config

    if args.model.count("/") != 1 or not all(args.model.split("/")):
        print(f"ftlang card: {args.model!r} is not a hub id (ORG/NAME)", file=sys.stderr)
        return 2
    cfg = fetch_config(args.model, args.revision)
    try:
        card = card_from_config(cfg, ModelSource(kind="hf", path=args.model, revision=args.revision))
    except CardError as e:
        hint = ("download the model and use local(\"dir\"): the checker then reads its layout from the "
                "safetensors headers" if isinstance(e, UnknownFamily) else
                "write a model_card by hand (see docs/language.md, Model cards)")
        raise DiagnosticError([error("FT212", f"cannot derive a model card from {args.model}: {e}", None,
                                     hint)]) from None
    name = args.name or card_name(args.model)
    text = card_text(card, name, f"{args.model}: dimensions from its config.json (written by `ftlang card`)")
    out = Path(args.output or Path("cards") / f"{name}.ft")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, text)
    sys.stdout.write(text)
    print(f'wrote {out}: import "{out.as_posix()}" and write `model = {name}`', file=sys.stderr)
    return 0
