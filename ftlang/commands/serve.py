"""`ftlang serve --base MODEL --adapter NAME=PATH ... [--registry DIR]`: OpenAI-compatible serving."""

from __future__ import annotations

import argparse
import sys

HELP = "serve a base model and several adapters over an OpenAI-compatible HTTP API"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="a model directory, a hub id, or a .gguf file")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH",
                        help="a PEFT adapter directory served as model NAME (repeatable)")
    parser.add_argument("--registry", metavar="DIR",
                        help="also serve every registry model's production (else latest) adapter under its name")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: local only)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--max-tokens-cap", type=int, default=512, help="the largest max_tokens a request may ask")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where the model runs (auto: cuda when available)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch intra-op threads (1 is often fastest on a busy CPU)")
    parser.add_argument("--max-batch", type=int, default=16, metavar="N",
                        help="most requests generated together in one forward pass (1: no batching)")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, metavar="MS",
                        help="how long the engine waits for more requests before starting a batch")
    parser.add_argument("--quiet", action="store_true", help="no access log")


def run(args: argparse.Namespace) -> int:
    from ftlang.serve.api import make_server
    from ftlang.serve.models import ModelPool, parse_adapter, registry_adapters

    if args.threads:
        import torch

        torch.set_num_threads(max(1, args.threads))
    adapters: dict[str, str] = {}
    if args.registry:
        adapters.update(registry_adapters(args.registry))
    for spec in args.adapter:
        name, path = parse_adapter(spec)
        adapters[name] = path
    pool = ModelPool(args.base, adapters, max_tokens_cap=args.max_tokens_cap, device=args.device,
                     max_batch=args.max_batch, batch_wait_s=max(0.0, args.batch_wait_ms) / 1000)
    server = make_server(pool, args.host, args.port, quiet=args.quiet)
    host, port = server.server_address[:2]
    print(f"serving {', '.join(pool.names())} on http://{host}:{port}", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: bound to {args.host}: reachable from other machines, with no authentication",
              file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
