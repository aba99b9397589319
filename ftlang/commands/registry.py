"""`ftlang registry list|show|verify|promote|export ... --registry DIR`: the filesystem model registry."""

from __future__ import annotations

import argparse
import json

HELP = "list, show, verify, promote or export models in a filesystem registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--registry", required=True, metavar="DIR", help="the registry directory")

    p = sub.add_parser("list", help="every model and version with its stage")
    common(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("show", help="the manifest of a version (default: the latest)")
    common(p)
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    p = sub.add_parser("verify", help="re-hash every file of every version")
    common(p)
    p.add_argument("name", nargs="?")
    p = sub.add_parser("promote", help="move a version to a stage (one production per model)")
    common(p)
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--stage", required=True, choices=["staging", "production", "archived"])
    p = sub.add_parser("export", help="lay a version's LoRA adapter out for vLLM or TGI, with a launch file")
    common(p)
    p.add_argument("name")
    p.add_argument("version", nargs="?", help="default: the latest")
    p.add_argument("--to", required=True, metavar="DIR", help="the output directory")
    p.add_argument("--format", dest="engine_format", required=True, choices=["vllm", "tgi"],
                   help="the engine the layout is for")


def run(args: argparse.Namespace) -> int:
    from ftlang.registry import Registry

    reg = Registry(args.registry)
    if args.action == "list":
        infos = reg.list()
        if args.json:
            print(json.dumps([{"name": i.name, "version": i.version, "stage": i.stage, "created_at": i.created_at}
                              for i in infos], indent=2))
            return 0
        if not infos:
            print(f"registry {args.registry}: empty")
            return 0
        width = max(len(i.name) for i in infos)
        for i in infos:
            print(f"{i.name.ljust(width)}  {i.version:<5} {i.stage:<10} {i.created_at}")
        return 0
    if args.action == "show":
        print(json.dumps(reg.manifest(args.name, args.version), indent=2, sort_keys=True))
        return 0
    if args.action == "verify":
        problems, notes = reg.verify(args.name)
        for n in notes:
            print(f"note: {n}")
        for p in problems:
            print(f"error: {p}")
        count = sum(1 for i in reg.list() if args.name in (None, i.name))
        if problems:
            print(f"verify: {len(problems)} problem(s) in {args.registry}")
            return 1
        print(f"verify: {count} version(s) OK in {args.registry}")
        return 0
    if args.action == "export":
        from ftlang.serve.engines import export_for_engine

        target = export_for_engine(args.registry, args.name, args.version, args.to, args.engine_format)
        launch = "vllm.sh" if args.engine_format == "vllm" else "tgi.env"
        print(f"{args.name}: adapter in {target}, launch with {target.parent / launch}")
        return 0
    if args.action == "promote":
        m = reg.promote(args.name, args.version, args.stage)
        print(f"{args.name} {m['version']}: {m['stage']}")
        return 0
    return 2
