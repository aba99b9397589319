"""`ftlang import CONFIG.yml [-o recipe.ft]`: an Axolotl, LLaMA-Factory or torchtune config as a `.ft` recipe.

Every key of the config is either expressed in the recipe or listed in a `# not imported:` comment at its
top. Exit 0 when a recipe was written, 1 when the config cannot be read, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftlang.diagnostics import DiagnosticError, error

HELP = "convert an Axolotl, LLaMA-Factory or torchtune YAML config into a .ft recipe"
TOOLS = ("axolotl", "llamafactory", "torchtune")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="the tool's YAML config file")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the recipe here (default: stdout)")
    parser.add_argument("--from", dest="tool", choices=TOOLS, help="the tool that wrote CONFIG (default: detected "
                                                                     "from its keys)")
    parser.add_argument("--name", help="the recipe's name (default: from the file name)")


def read_config(path: Path) -> dict:
    """The parsed YAML mapping; FT950 when the file cannot be read or is not a YAML mapping."""
    import yaml  # the `import` extra (FT901 names it when missing)

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DiagnosticError([error("FT950", f"cannot read {path}: {e.strerror or e}", None,
                                     "check that the file exists and is readable")]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DiagnosticError([error("FT950", f"{path} is not valid YAML: {' '.join(str(e).split())}", None,
                                     "fix the YAML (the tool itself would refuse it too)")]) from None
    if not isinstance(data, dict):
        raise DiagnosticError([error("FT950", f"{path} is not a YAML mapping of settings", None,
                                     "give the tool's training config file")])
    return data


def import_config(path: Path, tool: str | None = None, name: str | None = None):
    """(recipe text, Draft) for a config file."""
    from ftlang.importers import convert, detect
    from ftlang.importers.common import identifier
    from ftlang.importers.write import render

    cfg = read_config(path)
    tool = tool or detect(cfg)
    if tool is None:
        raise DiagnosticError([error("FT951", f"{path} does not look like an Axolotl, LLaMA-Factory or torchtune "
                                              "config", None, "say which tool wrote it: --from axolotl|llamafactory|"
                                                              "torchtune")])
    draft = convert(cfg, tool, path.name, identifier(name or path.stem), path.parent)
    return render(draft), draft


def run(args: argparse.Namespace) -> int:
    text, draft = import_config(Path(args.config), args.tool, args.name)
    if args.output:
        from ftlang.atomic import write_text

        write_text(Path(args.output), text)
        print(f"wrote {args.output}: {len(draft.handled - draft.skipped)} settings imported, "
              f"{len(draft.skipped)} noted as not imported; run `ftlang check {args.output}`", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
