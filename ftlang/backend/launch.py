"""Scale-out on an existing engine: a plan's `hardware` → an `accelerate launch` (or torchrun) command.

    launch_command(plan) -> list[str]        # what `ftlang plan --launch-cmd` prints
    perform_launch(plan, recipe_file, args, out) -> int   # `ftlang run --launch`

GPU plans go through `accelerate launch --config_file <generated>` (ddp → MULTI_GPU, fsdp → FSDP,
deepspeed → DEEPSPEED; num_processes = count·nodes, num_machines = nodes). CPU plans
(`hardware { device = cpu }`) use torchrun with the gloo backend, since accelerate's multi-CPU path
needs mpirun. Every process runs `ftlang run` on the same recipe with the same `--out`, so all ranks
share one run directory. This module stays torch-free: `ftlang plan` imports it.

Multi-node: run the same command on every node with NODE_RANK (0..nodes-1), MASTER_ADDR and
MASTER_PORT set in the environment.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ftlang.atomic import write_json
from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan, zero_stage

_DISTRIBUTED = {"none": "MULTI_GPU", "ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed": "DEEPSPEED"}
_MIXED = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}


def world(plan: Plan) -> int:
    return plan.hardware.count * plan.hardware.nodes


def launcher_for(plan: Plan) -> str:
    """`single` (one process), `torchrun` (CPU, gloo) or `accelerate` (GPUs): a function of the plan
    alone, so `ftlang plan --launch-cmd` prints the same command on every machine."""
    if world(plan) <= 1:
        return "single"
    return "torchrun" if plan.hardware.device == "cpu" else "accelerate"


def check_installed(plan: Plan) -> None:
    """What the machine that launches needs installed; checked by `run --launch`, never by `plan`."""
    launcher = launcher_for(plan)
    if launcher == "accelerate" and importlib.util.find_spec("accelerate") is None:
        raise DiagnosticError(error(
            "FT711", f"{world(plan)} GPU processes launch through accelerate, which is not installed", None,
            help="pip install 'ftlang[train]' (it brings accelerate)"))
    if plan.hardware.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise DiagnosticError(error(
            "FT711", "strategy deepspeed needs the deepspeed package, which is not installed", None,
            help="pip install deepspeed, or use strategy = ddp or fsdp",
        ))


def accelerate_config(plan: Plan) -> dict[str, Any]:
    """The accelerate config file contents for the plan's hardware (JSON, which accelerate reads)."""
    hw, t = plan.hardware, plan.train
    nodes = hw.nodes
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": _DISTRIBUTED[hw.strategy] if world(plan) > 1 else "NO",
        "num_processes": world(plan),
        "num_machines": nodes,
        "machine_rank": int(os.environ.get("NODE_RANK", "0")),
        "mixed_precision": _MIXED[t.precision],
        "use_cpu": hw.device == "cpu",
        "gpu_ids": "all",
        "rdzv_backend": "static",
        "same_network": True,
        "downcast_bf16": "no",
    }
    if nodes > 1:
        cfg["main_process_ip"] = os.environ.get("MASTER_ADDR", "127.0.0.1")
        cfg["main_process_port"] = int(os.environ.get("MASTER_PORT", "29500"))
    stage = zero_stage(hw)
    if hw.strategy == "fsdp":
        qlora = plan.method.kind == "qlora"
        cfg["fsdp_config"] = {
            "fsdp_auto_wrap_policy": "SIZE_BASED_WRAP" if hw.wrap == "size" else "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_sharding_strategy": "FULL_SHARD" if stage == 3 else "SHARD_GRAD_OP",
            "fsdp_state_dict_type": "SHARDED_STATE_DICT" if hw.state_dict == "sharded" else "FULL_STATE_DICT",
            "fsdp_offload_params": bool(hw.offload_params),
            "fsdp_sync_module_states": True,
            "fsdp_cpu_ram_efficient_loading": True,
            # LoRA: frozen and trainable params share flat buffers; QLoRA: PEFT's FSDP+QLoRA guide says false
            # (the 4-bit weights, stored in the compute dtype, are flattened like any other)
            "fsdp_use_orig_params": not qlora,
            "fsdp_activation_checkpointing": t.gradient_checkpointing,
        }
    if hw.strategy == "deepspeed":
        cfg["deepspeed_config"] = {
            "zero_stage": stage,
            "gradient_accumulation_steps": t.grad_accum,
            "gradient_clipping": t.max_grad_norm,
            "offload_optimizer_device": "cpu" if hw.offload_optimizer else "none",
            "offload_param_device": "cpu" if hw.offload_params else "none",
            "zero3_init_flag": False,
            # ZeRO-3: the saved model (and the adapter that export merges) is gathered, not a partition
            **({"zero3_save_16bit_model": True} if stage == 3 else {}),
        }
    return cfg


def config_path(plan: Plan) -> Path:
    return plan.resolve(".ftlang/launch") / f"{plan.short_hash}-accelerate.json"


def write_accelerate_config(plan: Plan, path: Path | None = None) -> Path:
    path = path or config_path(plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, accelerate_config(plan))


def _check_engine(plan: Plan, launcher: str) -> None:
    if launcher == "torchrun" and plan.hardware.strategy in ("fsdp", "deepspeed"):
        raise DiagnosticError(error(
            "FT711", f"strategy {plan.hardware.strategy} runs through accelerate on GPUs; this plan "
            "launches with torchrun (device = cpu)",
            None, help="use strategy = ddp on the CPU, or run on CUDA GPUs",
        ))


def launch_command(plan: Plan, *, run_dir: str | Path | None = None, recipe_file: str | None = None,
                   extra: list[str] | None = None, write_config: bool = True,
                   python: str = sys.executable) -> list[str]:
    """The command that runs the plan on all its devices: every process runs `ftlang run`."""
    launcher = launcher_for(plan)
    recipe = recipe_file or str(plan.resolve(plan.recipe.file))
    tail = ["run", recipe]
    if plan.recipe.name:
        tail += ["--recipe", plan.recipe.name]
    for name, value in sorted(plan.recipe.params.items()):
        tail += ["--set", f"{name}={str(value).lower() if isinstance(value, bool) else value}"]
    if run_dir is not None:
        tail += ["--out", str(run_dir)]
    tail += list(extra or [])
    if launcher == "single":
        return [python, "-m", "ftlang", *tail]
    _check_engine(plan, launcher)
    hw = plan.hardware
    if launcher == "torchrun":
        cmd = [python, "-m", "torch.distributed.run", "--nproc_per_node", str(hw.count),
               "--nnodes", str(hw.nodes)]
        if hw.nodes > 1:
            cmd += ["--node_rank", os.environ.get("NODE_RANK", "0"),
                    "--master_addr", os.environ.get("MASTER_ADDR", "127.0.0.1"),
                    "--master_port", os.environ.get("MASTER_PORT", "29500")]
        else:
            cmd += ["--standalone"]
        return [*cmd, "-m", "ftlang", *tail]
    cfg = write_accelerate_config(plan) if write_config else config_path(plan)
    return [python, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "-m", "ftlang", *tail]


def perform_launch(plan: Plan, recipe_file: str, args: Any, out: Path | None) -> int:
    """`ftlang run --launch`: fix one run dir for all ranks, then run the launcher and wait for it."""
    from ftlang.backend.run import latest_run_dir, new_run_dir, prepare_run_dir

    extra: list[str] = []
    if getattr(args, "resume", None):
        target = Path(args.resume) if isinstance(args.resume, str) else (out or latest_run_dir(plan))
        run_dir, _ = prepare_run_dir(plan, target, True)  # refuses a changed plan before launching anything
        extra.append("--resume")
    else:
        run_dir = out or new_run_dir(plan)
    for flag in ("force", "allow_outside", "verbose"):
        if getattr(args, flag, False):
            extra.append("--" + flag.replace("_", "-"))
    check_installed(plan)
    cmd = launch_command(plan, run_dir=run_dir, recipe_file=recipe_file, extra=extra)
    if getattr(args, "plan", None):  # run the very plan given, not a recompile
        i = cmd.index("run")
        cmd = [*cmd[: i + 1], "--plan", str(args.plan), *[c for c in cmd[i + 2:]]]
    print("launch: " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.call(cmd)
