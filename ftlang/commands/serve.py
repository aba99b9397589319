"""`ftlang serve --base MODEL --adapter NAME=PATH ... [--registry DIR]`: OpenAI-compatible serving.

`--engine vllm` hands the same base and adapters to vLLM's OpenAI server instead (LoRA adapters only);
`--print-command` prints that command without running it."""

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
    parser.add_argument("--engine", choices=["ftlang", "vllm"], default="ftlang",
                        help="ftlang: this process serves (CPU or GPU); vllm: run vLLM's OpenAI server (GPU)")
    parser.add_argument("--print-command", action="store_true",
                        help="with --engine vllm: print the command instead of running it")


def _vllm(args: argparse.Namespace, adapters: dict[str, str]) -> int:
    import os
    import shlex
    import shutil

    from ftlang.diagnostics import DiagnosticError, error
    from ftlang.serve.engines import vllm_command

    cmd = vllm_command(args.base, adapters, args.host, args.port)
    if args.print_command:
        print(shlex.join(cmd))
        return 0
    if shutil.which(cmd[0]) is None:
        raise DiagnosticError(error("FT840", "vLLM is not installed here (no `vllm` on PATH)", None,
                                    help="pip install vllm on a CUDA machine, or add --print-command to get the "
                                         "command; `ftlang serve` without --engine serves on this machine"))
    print(f"running: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)  # vLLM takes over this process (signals, exit code)
    return 0


def run(args: argparse.Namespace) -> int:
    from ftlang.serve.models import parse_adapter, registry_adapters

    adapters: dict[str, str] = {}
    if args.registry:
        adapters.update(registry_adapters(args.registry))
    for spec in args.adapter:
        name, path = parse_adapter(spec)
        adapters[name] = path
    if args.engine == "vllm":
        return _vllm(args, adapters)
    from ftlang.serve.api import make_server
    from ftlang.serve.models import ModelPool

    if args.threads:
        import torch

        torch.set_num_threads(max(1, args.threads))
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
